package glassbox.evidence.gb_evd_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.evidence.gb_evd_002 as rule

test_allow_verified if {
	count(rule.deny_results(f.agent_input([]))) == 0
}

test_deny_unverified if {
	count(rule.deny_results(f.with_evidence(f.agent_input([]), {"digest_verified": false}))) == 1
}

test_edge_flag_missing_counts_as_unverified if {
	inp := f.patched(f.agent_input([]), {"evidence": f.evidence_without("digest_verified")})
	count(rule.deny_results(inp)) == 1
}
