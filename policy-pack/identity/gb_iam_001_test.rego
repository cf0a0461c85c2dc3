package glassbox.identity.gb_iam_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.identity.gb_iam_001 as rule

pol(stmt) := json.marshal({"Version": "2012-10-17", "Statement": stmt})

test_allow_scoped_actions if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}

test_deny_star_string if {
	p := f.res("aws:iam/rolePolicy:RolePolicy", "p", {"role": "r", "policy": pol({"Effect": "Allow", "Action": "*", "Resource": "*"})})
	count(rule.deny_results(f.plan_input([p]))) == 1
}

test_deny_star_in_inline_policy_list if {
	r := f.res("aws:iam/role:Role", "r", {"inlinePolicies": [{"name": "x", "policy": pol([{"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "*"}])}]})
	some d in rule.deny_results(f.plan_input([r]))
	contains(d.msg, "inlinePolicies[0]")
}

test_edge_deny_effect_is_fine if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": pol([{"Effect": "Deny", "Action": "*", "Resource": "*"}])})
	count(rule.deny_results(f.plan_input([p]))) == 0
}

test_edge_unparseable_policy_ignored_here if {
	p := f.res("aws:iam/policy:Policy", "p", {"policy": "not json"})
	count(rule.deny_results(f.plan_input([p]))) == 0
}
