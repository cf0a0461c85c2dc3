package glassbox.data.gb_data_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_002 as rule

doc(stmt) := json.marshal({"Version": "2012-10-17", "Statement": [stmt]})

test_allow_named_principal if {
	p := doc({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "s3:GetObject", "Resource": "*"})
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucketPolicy:BucketPolicy", "p", {"bucket": "b", "policy": p})]))) == 0
}

test_deny_star_principal if {
	p := doc({"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"})
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucketPolicy:BucketPolicy", "p", {"bucket": "b", "policy": p})]))) == 1
}

test_deny_inline_aws_star_list if {
	p := doc({"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:*", "Resource": "*"})
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucket:Bucket", "b", {"policy": p})]))) == 1
}

test_edge_condition_narrows if {
	p := doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}})
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucketPolicy:BucketPolicy", "p", {"bucket": "b", "policy": p})]))) == 0
}

test_edge_deny_statement_ignored if {
	p := doc({"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"})
	count(rule.deny_results(f.plan_input([f.res("aws:s3/bucketPolicy:BucketPolicy", "p", {"bucket": "b", "policy": p})]))) == 0
}
