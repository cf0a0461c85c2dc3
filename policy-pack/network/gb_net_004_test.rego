package glassbox.network.gb_net_004_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.network.gb_net_004 as rule

sg(ingress) := f.res("aws:ec2/securityGroup:SecurityGroup", "wide", {"ingress": ingress})

test_allow_https_only if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.deny_results(inp)) == 0
}

test_deny_protocol_all if {
	r := f.res("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "all", {"ipProtocol": "-1", "cidrIpv4": "0.0.0.0/0", "securityGroupId": "wide"})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_deny_full_tcp_range if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 0, "toPort": 65535, "ipv6CidrBlocks": ["::/0"]}])])
	count(rule.deny_results(inp)) == 1
}

test_edge_all_traffic_from_private_range if {
	inp := f.plan_input([sg([{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["10.0.0.0/8"]}])])
	count(rule.deny_results(inp)) == 0
}
