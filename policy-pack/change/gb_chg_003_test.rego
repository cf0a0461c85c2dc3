package glassbox.change.gb_chg_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.change.gb_chg_003 as rule

exp := {"project": "app", "stack": "dev", "type": "aws:s3/bucket:Bucket", "name": "b", "action": "create"}

test_allow_declared_and_planned if {
	inp := f.with_evidence(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")]), {"expected_changes": [exp]})
	count(rule.warn_results(inp)) == 0
}

test_warn_declared_not_planned if {
	inp := f.with_evidence(f.agent_input([]), {"expected_changes": [exp]})
	count(rule.warn_results(inp)) == 1
}

test_edge_no_manifest if {
	count(rule.warn_results(f.agent_input([]))) == 0
}

# The lookalike entry of GB-CHG-002's separator test is reported as not planned.
test_edge_separator_in_a_field_is_not_planned if {
	c := f.change("aws:s3/bucket:Bucket", "x|y", "delete", "dev")
	lookalike := {"project": "app", "stack": "dev", "type": "aws:s3/bucket:Bucket|x", "name": "y", "action": "delete"}
	inp := f.with_evidence(f.agent_input([c]), {"expected_changes": [lookalike]})
	count(rule.warn_results(inp)) == 1
}
