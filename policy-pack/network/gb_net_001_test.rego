package glassbox.network.gb_net_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.network.gb_net_001 as rule

sg(ingress) := f.res("aws:ec2/securityGroup:SecurityGroup", "web", {"ingress": ingress})

test_allow_ssh_from_office if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]}])])
	count(rule.deny_results(inp)) == 0
}

test_deny_ssh_from_world if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.deny_results(inp)) == 1
}

test_deny_rdp_ipv6_separate_rule if {
	r := f.res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "rdp", {"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389, "cidrIpv6": "::/0", "securityGroupId": "web"})
	some d in rule.deny_results(f.plan_input([r]))
	d.port == 3389
}

test_edge_range_covers_ssh if {
	r := f.res("aws:ec2/securityGroupRule:SecurityGroupRule", "range", {"type": "ingress", "protocol": "tcp", "fromPort": 20, "toPort": 25, "cidrBlocks": ["0.0.0.0/0"], "securityGroupId": "web"})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_all_protocols_ignores_ports if {
	inp := f.plan_input([sg([{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.deny_results(inp)) == 2
}

test_edge_egress_rule_ignored if {
	r := f.res("aws:ec2/securityGroupRule:SecurityGroupRule", "out", {"type": "egress", "protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"], "securityGroupId": "web"})
	count(rule.deny_results(f.plan_input([r]))) == 0
}
