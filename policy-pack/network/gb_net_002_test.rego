package glassbox.network.gb_net_002_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.network.gb_net_002 as rule

sg(ingress) := f.res("aws:ec2/securityGroup:SecurityGroup", "db", {"ingress": ingress})

test_allow_postgres_from_vpc if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["10.0.0.0/16"]}])])
	count(rule.deny_results(inp)) == 0
}

test_deny_mysql_from_world if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 3306, "toPort": 3306, "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"]}])])
	some d in rule.deny_results(inp)
	d.port == 3306
}

test_deny_redis_ipv6_rule_resource if {
	r := f.res("aws:ec2/securityGroupRule:SecurityGroupRule", "redis", {"type": "ingress", "protocol": "tcp", "fromPort": 6379, "toPort": 6379, "ipv6CidrBlocks": ["::/0"], "securityGroupId": "db"})
	count(rule.deny_results(f.plan_input([r]))) == 1
}

test_edge_wide_range_covers_several if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 1000, "toPort": 6000, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.deny_results(inp)) == 4
}

test_edge_adjacent_port_is_fine if {
	inp := f.plan_input([sg([{"protocol": "tcp", "fromPort": 5433, "toPort": 6378, "cidrBlocks": ["0.0.0.0/0"]}])])
	count(rule.deny_results(inp)) == 0
}
