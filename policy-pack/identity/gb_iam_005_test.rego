package glassbox.identity.gb_iam_005_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.identity.gb_iam_005 as rule

trust(principal) := json.marshal({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]})

test_allow_service_principal if {
	r := f.res("aws:iam/role:Role", "r", {"assumeRolePolicy": trust({"Service": "ec2.amazonaws.com"})})
	count(rule.deny_results(f.plan_input([r]))) == 0
}

test_deny_star_principal if {
	r := f.res("aws:iam/role:Role", "r", {"assumeRolePolicy": trust("*")})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_aws_star_in_list if {
	r := f.res("aws:iam/role:Role", "r", {"assumeRolePolicy": trust({"AWS": ["arn:aws:iam::123:root", "*"]})})
	count(rule.deny_results(f.plan_input([r]))) == 1
}
