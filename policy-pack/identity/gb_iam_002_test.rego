package glassbox.identity.gb_iam_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.identity.gb_iam_002 as rule

pol(stmt) := json.marshal({"Version": "2012-10-17", "Statement": stmt})

test_allow_specific_actions if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}

test_deny_iam_star if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}])})
	some d in rule.deny_results(f.plan_input([p]))
	d.action == "iam:*"
}

test_edge_case_insensitive_and_list if {
	p := f.res("aws:iam/userPolicy:UserPolicy", "p", {"policy": pol([{"Effect": "Allow", "Action": ["logs:PutLogEvents", "S3:*"], "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 1
}

test_edge_non_sensitive_service if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": "cloudwatch:*", "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}
