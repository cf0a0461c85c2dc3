package glassbox.governance.gb_gov_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.governance.gb_gov_001 as rule

test_allow_infra_paths if {
	count(rule.deny_results(f.with_paths(f.agent_input([]), ["infra/app/__main__.py"]))) == 0
}

test_deny_policy_change if {
	some d in rule.deny_results(f.with_governance(f.agent_input([]), ["policy-pack/lib/util.rego"], ["policy-pack/lib/util.rego"]))
	d.resource == "policy-pack/lib/util.rego"
}

test_deny_reported_governance_path if {
	inp := object.union(f.agent_input([]), {"files": {"changed_paths": [], "governance_paths": [".github/workflows/check.yml"]}})
	count(rule.deny_results(inp)) == 1
}

test_edge_own_decision_record_allowed if {
	# the check leaves the PR's own decision record out of governance_paths
	count(rule.deny_results(f.with_paths(f.agent_input([]), [".glassbox/decisions/2026/11/x.json"]))) == 0
}

test_edge_changed_paths_alone_never_decide if {
	# only the check's one predicate says what is governance; the pack does not second-guess it
	count(rule.deny_results(f.with_paths(f.agent_input([]), ["registry/agents.yaml"]))) == 0
}

test_edge_other_glassbox_file_denied if {
	count(rule.deny_results(f.with_governance(f.agent_input([]), [".glassbox/waivers.yaml"], [".glassbox/waivers.yaml"]))) == 1
}
