package glassbox.evidence.gb_evd_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.evidence.gb_evd_001 as rule

test_allow_agent_with_evidence if {
	count(rule.deny_results(f.agent_input([]))) == 0
}

test_deny_agent_without_evidence if {
	count(rule.deny_results(object.union(f.agent_input([]), {"evidence": {"present": false}}))) == 1
}

test_edge_evidence_key_absent if {
	inp := {k: v | some k; v := f.agent_input([])[k]; k != "evidence"}
	count(rule.deny_results(inp)) == 1
}

test_edge_human_without_evidence if {
	count(rule.deny_results(f.human_input([]))) == 0
}
