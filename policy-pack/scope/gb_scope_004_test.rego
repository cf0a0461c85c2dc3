package glassbox.scope.gb_scope_004_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.scope.gb_scope_004 as rule

test_allow_active_agent if {
	count(rule.deny_results(f.agent_input([]))) == 0
}

test_deny_unregistered_agent if {
	inp := object.union(f.agent_input([]), {"registry": {"agent": null, "governance_paths": f.governance_paths}})
	count(rule.deny_results(inp)) == 1
}

test_deny_suspended_agent if {
	count(rule.deny_results(f.with_agent(f.agent_input([]), {"status": "suspended"}))) == 1
}

test_edge_id_mismatch if {
	count(rule.deny_results(f.with_agent(f.agent_input([]), {"id": "other-agent"}))) == 1
}

test_edge_human_pr_ignored if {
	count(rule.deny_results(f.human_input([]))) == 0
}
