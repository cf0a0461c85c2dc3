package glassbox.evidence.gb_evd_004_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.risk
import data.glassbox.evidence.gb_evd_004 as rule

deny_of(inp) := rule.deny_results_at(inp, risk.tier_of(inp))

warn_of(inp) := rule.warn_results_at(inp, risk.tier_of(inp))

medium_change := f.change("aws:s3/bucket:Bucket", "b", "create", "dev")

test_allow_full_justification if {
	count(deny_of(f.agent_input([medium_change]))) == 0
}

test_deny_no_sources_at_medium if {
	inp := f.with_evidence(f.agent_input([medium_change]), {"evidence_sources": []})
	some d in deny_of(inp)
	d.field == "evidence_sources"
}

test_deny_no_rollback_at_high if {
	inp := f.with_evidence(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]), {"has_rollback_plan": false})
	count(deny_of(inp)) == 1
}

test_edge_low_tier_warns if {
	inp := f.with_evidence(f.agent_input([]), {"has_rollback_plan": false, "evidence_sources": []})
	count(deny_of(inp)) == 0
	count(warn_of(inp)) == 2
}
