package glassbox.scope.gb_scope_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.scope.gb_scope_002 as rule

test_allow_stack_in_scope if {
	count(rule.deny_results(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")]))) == 0
}

test_deny_stack_out_of_scope if {
	inp := f.with_scope(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "prod")]), {"stacks": ["dev"]})
	some d in rule.deny_results(inp)
	d.stack == "prod"
}

test_edge_project_stack_glob if {
	inp := f.with_scope(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "prod")]), {"stacks": ["app/*"]})
	count(rule.deny_results(inp)) == 0
}
