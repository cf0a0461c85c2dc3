package glassbox.identity.gb_iam_004_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.identity.gb_iam_004 as rule

admin := "arn:aws:iam::aws:policy/AdministratorAccess"

test_allow_readonly_attachment if {
	a := f.res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", {"role": "r", "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"})
	count(rule.deny_results(f.plan_input([a]))) == 0
}

test_deny_admin_attachment if {
	a := f.res("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "a", {"role": "r", "policyArn": admin})
	some d in rule.deny_results(f.plan_input([a]))
	d.policy_arn == admin
}

test_edge_managed_policy_arns_on_role if {
	r := f.res("aws:iam/role:Role", "r", {"managedPolicyArns": ["arn:aws:iam::aws:policy/IAMFullAccess"]})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_customer_policy_named_like_admin if {
	a := f.res("aws:iam/userPolicyAttachment:UserPolicyAttachment", "a", {"user": "u", "policyArn": "arn:aws:iam::123:policy/AdministratorAccessReview"})
	count(rule.deny_results(f.plan_input([a]))) == 0
}
