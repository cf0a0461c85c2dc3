package glassbox.network.gb_net_003_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.network.gb_net_003 as rule

dsg(inputs) := f.res("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "default", inputs)

test_allow_locked_down_default if {
	count(rule.deny_results(f.plan_input([dsg({"vpcId": "vpc-1"})]))) == 0
}

test_deny_default_with_ingress if {
	inp := f.plan_input([dsg({"vpcId": "vpc-1", "ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": true}]})])
	some d in rule.deny_results(inp)
	d.direction == "ingress"
}

test_deny_sg_named_default if {
	r := f.res("aws:ec2/securityGroup:SecurityGroup", "app", {"name": "default"})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_empty_rule_lists_are_fine if {
	count(rule.deny_results(f.plan_input([dsg({"ingress": [], "egress": []})]))) == 0
}
