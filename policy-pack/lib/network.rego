# METADATA
# title: Network helpers
# description: Normalises security-group ingress from inline rules and separate rule resources.
package glassbox.lib.network

import rego.v1

import data.glassbox.lib.util

world_ipv4 := "0.0.0.0/0"

world_ipv6 := "::/0"

admin_ports := {22, 3389}

database_ports := {3306, 5432, 1433, 1521, 6379, 27017}

sg_type := "aws:ec2/securityGroup:SecurityGroup"

sg_rule_type := "aws:ec2/securityGroupRule:SecurityGroupRule"

vpc_ingress_type := "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"

exposure_types := {sg_type, sg_rule_type, vpc_ingress_type, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"}

protocol(p) := lower(util.text(p))

cidrs(a, b) := array.concat(util.as_list(a), util.as_list(b))

# Ingress rules of one resource, normalised to {resource, index, protocol, from, to, cidrs}.
# Each body's guard sits outside its comprehension: a comprehension is always defined.
rules_of(r) := [rule |
	ingress := util.as_list(util.input_value(r, "ingress", []))
	some i # "some i, x in" inside a comprehension trips rego-cpp's parser (comma = item separator)
	ing := ingress[i]
	rule := {
		"resource": r, "index": i,
		"protocol": protocol(object.get(ing, "protocol", "-1")),
		"from": object.get(ing, "fromPort", 0), "to": object.get(ing, "toPort", 0),
		"cidrs": cidrs(object.get(ing, "cidrBlocks", []), object.get(ing, "ipv6CidrBlocks", [])),
	}
] if r.type in {sg_type, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"}

rules_of(r) := [rule |
	util.input_value(r, "type", "") == "ingress"
	rule := {
		"resource": r, "index": 0,
		"protocol": protocol(util.input_value(r, "protocol", "-1")),
		"from": util.input_value(r, "fromPort", 0), "to": util.input_value(r, "toPort", 0),
		"cidrs": cidrs(util.input_value(r, "cidrBlocks", []), util.input_value(r, "ipv6CidrBlocks", [])),
	}
] if r.type == sg_rule_type

rules_of(r) := [rule |
	rule := {
		"resource": r, "index": 0,
		"protocol": protocol(util.input_value(r, "ipProtocol", "-1")),
		"from": util.input_value(r, "fromPort", 0), "to": util.input_value(r, "toPort", 0),
		"cidrs": cidrs(util.input_value(r, "cidrIpv4", []), util.input_value(r, "cidrIpv6", [])),
	}
] if r.type == vpc_ingress_type

rules_of(r) := [] if not r.type in exposure_types

# Every ingress rule at head.
ingress_rules(doc) := [rule |
	some r in util.resources_of_types(doc, exposure_types)
	some rule in rules_of(r)
]

# The policy input's ingress rules, evaluated once per query and shared by the GB-NET rules (rego-cpp
# memoises complete rules, not function calls).
input_ingress_rules := ingress_rules(input)

# Protocols that carry TCP/UDP ports; "-1" / "all" means every protocol and every port.
all_protocols := {"-1", "all"}

port_protocols := {"tcp", "udp", "6", "17"}

world_open(rule) if world_ipv4 in rule.cidrs

world_open(rule) if world_ipv6 in rule.cidrs

# The rule admits traffic to port p. With protocol -1 the ports are ignored (all traffic).
covers_port(rule, p) if rule.protocol in all_protocols

covers_port(rule, p) if {
	rule.protocol in port_protocols
	rule.from <= p
	p <= rule.to
}

# The rule admits every port (all protocols, or the full TCP/UDP range).
all_ports(rule) if rule.protocol in all_protocols

all_ports(rule) if {
	rule.protocol in port_protocols
	rule.from <= 0
	rule.to >= 65535
}

describe(rule) := util.msg(["all traffic from ", concat(",", [util.text(c) | some c in rule.cidrs])]) if {
	rule.protocol in all_protocols
}

describe(rule) := util.msg([rule.protocol, " ports ", rule.from, "-", rule.to, " from ", concat(",", [util.text(c) | some c in rule.cidrs])]) if {
	not rule.protocol in all_protocols
}

# A resource's after-state opens some port to the world.
exposes(r) if {
	some rule in rules_of(r)
	world_open(rule)
}
