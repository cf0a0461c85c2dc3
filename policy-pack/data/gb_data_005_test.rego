package glassbox.data.gb_data_005_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_005 as rule

ver(bucket, status) := f.res("aws:s3/bucketVersioning:BucketVersioning", "v", {"bucket": bucket, "versioningConfiguration": {"status": status}})

test_allow_enabled_versioning if {
	inp := f.plan_input([f.res("aws:s3/bucket:Bucket", "data", {}), ver("data", "Enabled")])
	count(rule.deny_results(inp)) == 0
}

test_deny_suspended_versioning if {
	inp := f.plan_input([f.res("aws:s3/bucket:Bucket", "data", {}), ver("data", "Suspended")])
	count(rule.deny_results(inp)) == 1
}

test_deny_no_versioning if {
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucketV2:BucketV2", "data", {})]))) == 1
}

test_edge_dev_is_fine if {
	count(rule.deny_results(f.plan_input([f.dev_res("aws:s3/bucket:Bucket", "data", {})]))) == 0
}

test_edge_inline_versioning if {
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucket:Bucket", "data", {"versioning": {"enabled": true}})]))) == 0
}
