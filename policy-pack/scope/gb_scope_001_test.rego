package glassbox.scope.gb_scope_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.scope.gb_scope_001 as rule

test_allow_type_in_scope if {
	count(rule.deny_results(f.agent_input([f.change("aws:s3/bucketV2:BucketV2", "b", "create", "dev")]))) == 0
}

test_deny_iam_type if {
	some d in rule.deny_results(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]))
	d.type == "aws:iam/role:Role"
}

test_edge_empty_scope_denies_everything if {
	inp := f.with_scope(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")]), {"resource_types": []})
	count(rule.deny_results(inp)) == 1
}

test_edge_human_not_scoped if {
	count(rule.deny_results(f.human_input([f.change("aws:iam/role:Role", "r", "create", "dev")]))) == 0
}
