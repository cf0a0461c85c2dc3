package glassbox.evidence.gb_evd_005_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.evidence.gb_evd_005 as rule

test_allow_same_agent if {
	count(rule.deny_results(f.agent_input([]))) == 0
}

test_deny_other_agent if {
	count(rule.deny_results(f.with_evidence(f.agent_input([]), {"agent_id": "someone-else"}))) == 1
}

test_edge_missing_agent_id if {
	inp := f.patched(f.agent_input([]), {"evidence": f.evidence_without("agent_id")})
	count(rule.deny_results(inp)) == 1
}
