package glassbox.evidence.gb_evd_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.risk
import data.glassbox.evidence.gb_evd_003 as rule

deny_of(inp) := rule.deny_results_at(inp, risk.tier_of(inp))

warn_of(inp) := rule.warn_results_at(inp, risk.tier_of(inp))

medium_change := f.change("aws:s3/bucket:Bucket", "b", "create", "dev")

test_allow_full_provenance if {
	inp := f.agent_input([medium_change])
	count(deny_of(inp)) == 0
	count(warn_of(inp)) == 0
}

test_deny_missing_model_at_medium if {
	inp := f.with_evidence(f.agent_input([medium_change]), {"model": {"provider": "p", "model_id": "", "version": "1"}})
	some d in deny_of(inp)
	d.field == "model.model_id"
}

test_warn_missing_prompt_hash_at_low if {
	inp := f.with_evidence(f.agent_input([]), {"prompt": {"template_id": "t"}})
	count(deny_of(inp)) == 0
	count(warn_of(inp)) == 1
}

test_edge_human_not_checked if {
	count(deny_of(f.human_input([medium_change]))) == 0
}
