package glassbox.data.gb_data_004_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_004 as rule

sse(bucket) := {"bucket": bucket, "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]}

test_allow_bucket_with_sse_resource if {
	inp := f.plan_input([
		f.res("aws:s3/bucket:Bucket", "data", {"bucket": "acme-data"}),
		f.res("aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2", "data-sse", sse("acme-data")),
	])
	count(rule.deny_results(inp)) == 0
}

test_deny_prod_bucket_without_sse if {
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucket:Bucket", "data", {})]))) == 1
}

test_edge_inline_sse_counts if {
	b := f.res("aws:s3/bucket:Bucket", "data", {"serverSideEncryptionConfiguration": {"rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}}})
	count(rule.deny_results(f.plan_input([b]))) == 0
}

test_edge_dev_warns_only if {
	inp := f.plan_input([f.dev_res("aws:s3/bucket:Bucket", "tmp", {})])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 1
}
