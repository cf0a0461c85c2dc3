package glassbox.data.gb_data_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_001 as rule

test_allow_private_bucket if {
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucket:Bucket", "logs", {"acl": "private"})]))) == 0
}

test_deny_public_read_bucket if {
	some d in rule.deny_results(f.plan_input([f.res("aws:s3/bucket:Bucket", "site", {"acl": "public-read"})]))
	d.acl == "public-read"
}

test_deny_acl_resource_v2 if {
	r := f.res("aws:s3/bucketAclV2:BucketAclV2", "site-acl", {"bucket": "site", "acl": "public-read-write"})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_all_users_grant if {
	grant := {"grantee": {"type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"}, "permission": "READ"}
	r := f.res("aws:s3/bucketAcl:BucketAcl", "acl", {"bucket": "b", "accessControlPolicy": {"grants": [grant], "owner": {"id": "x"}}})
	count(rule.deny_results(f.plan_input([r]))) == 1
}
