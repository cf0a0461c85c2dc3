package glassbox.scope.gb_scope_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.risk
import data.glassbox.scope.gb_scope_003 as rule

deny_of(inp) := rule.deny_results_at(inp, risk.tier_of(inp))

test_allow_within_ceiling if {
	count(deny_of(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]))) == 0
}

test_deny_above_ceiling if {
	inp := f.with_scope(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]), {"max_risk": "medium"})
	some d in deny_of(inp)
	d.tier == "high"
}

test_edge_confidence_escalation_crosses_ceiling if {
	inp := f.with_evidence(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]), {"confidence_score": 0.2})
	count(deny_of(inp)) == 1
}
