package glassbox.network.gb_net_005_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.network.gb_net_005 as rule

sg(ingress) := f.res("aws:ec2/securityGroup:SecurityGroup", "lb", {"ingress": ingress})

test_allow_private_https if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["10.0.0.0/8"]}])])
	count(rule.warn_results(inp)) == 0
}

test_warn_public_https if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.warn_results(inp)) == 1
}

test_edge_ssh_left_to_net_001 if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.warn_results(inp)) == 0
}
