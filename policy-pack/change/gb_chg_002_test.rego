package glassbox.change.gb_chg_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.change.gb_chg_002 as rule

expected(c) := {"project": c.project, "stack": c.stack, "type": c.type, "name": c.name, "action": c.action}

test_allow_declared_changes if {
	c := f.change("aws:s3/bucket:Bucket", "b", "delete", "dev")
	inp := f.with_evidence(f.agent_input([c]), {"expected_changes": [expected(c)]})
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 0
}

test_deny_undeclared_delete if {
	inp := f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "delete", "dev")])
	count(rule.deny_results(inp)) == 1
}

test_warn_undeclared_create if {
	inp := f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 1
}

test_edge_declared_update_became_replace if {
	c := f.change("aws:rds/instance:Instance", "db", "replace", "dev")
	inp := f.with_evidence(f.agent_input([c]), {"expected_changes": [object.union(expected(c), {"action": "update"})]})
	some d in rule.deny_results(inp)
	d.action == "replace"
}

test_edge_human_pr_not_checked if {
	count(rule.deny_results(f.human_input([f.change("aws:s3/bucket:Bucket", "b", "delete", "dev")]))) == 0
}

# A "|" inside a field never lets a declared entry stand for another change whose fields join to the same text.
test_edge_separator_in_a_field_declares_nothing_else if {
	c := f.change("aws:s3/bucket:Bucket", "x|y", "delete", "dev")
	lookalike := object.union(expected(c), {"type": "aws:s3/bucket:Bucket|x", "name": "y"})
	inp := f.with_evidence(f.agent_input([c]), {"expected_changes": [lookalike]})
	some d in rule.deny_results(inp)
	d.action == "delete"
}

# A change missing a key field is undeclared even when every other key matches one for one.
test_edge_change_without_a_name_is_undeclared if {
	c := f.change("aws:s3/bucket:Bucket", "b", "delete", "dev")
	unnamed := object.remove(f.change("aws:s3/bucket:Bucket", "c", "delete", "dev"), {"name"})
	inp := f.with_evidence(f.agent_input([c, unnamed]), {"expected_changes": [expected(c)]})
	count(rule.undeclared(inp)) == 1
	rule.undeclared(inp)[0] == unnamed
}

# A resource whose own name holds "|" cannot be declared: its delete is denied for a reviewer to judge.
test_edge_name_holding_the_separator_is_undeclared if {
	c := f.change("aws:s3/bucket:Bucket", "x|y", "delete", "dev")
	inp := f.with_evidence(f.agent_input([c]), {"expected_changes": [expected(c)]})
	count(rule.deny_results(inp)) == 1
}
