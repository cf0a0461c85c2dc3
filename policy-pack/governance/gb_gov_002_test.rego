package glassbox.governance.gb_gov_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.governance.gb_gov_002 as rule

test_allow_no_governance_change if {
	count(rule.warn_results(f.human_input([]))) == 0
}

test_warn_registry_change if {
	count(rule.warn_results(f.with_governance(f.human_input([]), ["registry/agents.yaml", "infra/x.py"], ["registry/agents.yaml"]))) == 1
}

test_edge_decision_record_by_human_counts if {
	count(rule.warn_results(f.with_governance(f.human_input([]), [".glassbox/decisions/2026/11/x.json"], [".glassbox/decisions/2026/11/x.json"]))) == 1
}
