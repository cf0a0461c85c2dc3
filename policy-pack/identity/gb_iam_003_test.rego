package glassbox.identity.gb_iam_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.identity.gb_iam_003 as rule

pol(stmt) := json.marshal({"Version": "2012-10-17", "Statement": stmt})

test_allow_read_on_star if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": ["ec2:DescribeInstances", "s3:ListAllMyBuckets"], "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}

test_deny_write_on_star if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": ["*"]}])})
	some d in rule.deny_results(f.plan_input([p]))
	d.actions == ["s3:putobject"]
}

test_edge_write_on_specific_arn if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}
