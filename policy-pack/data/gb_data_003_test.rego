package glassbox.data.gb_data_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_003 as rule

all_on := {"blockPublicAcls": true, "blockPublicPolicy": true, "ignorePublicAcls": true, "restrictPublicBuckets": true}

test_allow_bucket_with_full_block_by_logical_name if {
	inp := f.plan_input([
		f.res("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs"}),
		f.res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "logs-pab", object.union(all_on, {"bucket": "logs"})),
	])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 0
}

test_deny_prod_bucket_without_block if {
	inp := f.plan_input([f.res("aws:s3/bucketV2:BucketV2", "logs", {"bucket": "acme-logs"})])
	count(rule.deny_results(inp)) == 1
}

test_deny_block_with_setting_off if {
	inp := f.plan_input([
		f.res("aws:s3/bucket:Bucket", "logs", {"bucket": "acme-logs"}),
		f.res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "logs-pab", object.union(all_on, {"bucket": "acme-logs", "blockPublicPolicy": false})),
	])
	some d in rule.deny_results(inp)
	d.settings_off == ["blockPublicPolicy"]
}

test_edge_dev_bucket_without_block_warns if {
	inp := f.plan_input([f.dev_res("aws:s3/bucket:Bucket", "scratch", {})])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 1
}

test_edge_block_in_other_stack_does_not_count if {
	inp := f.plan_input([
		f.res("aws:s3/bucket:Bucket", "logs", {}),
		f.dev_res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "logs-pab", object.union(all_on, {"bucket": "logs"})),
	])
	count(rule.deny_results(inp)) == 1
}
