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

inline_sg_types := {sg_type, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"}

# Ingress rules of one resource, normalised to {resource, index, protocol, from, to, cidrs}.
# Each case's guard sits outside its comprehension: a comprehension is always defined. An else chain,
# not one body per type: regorus evaluates every body of a function on each call.
rules_of(r) := [rule |
	ingress := util.as_list(object.get(object.get(r, "inputs", {}), "ingress", []))
	some i # "some i, x in" inside a comprehension trips rego-cpp's parser (comma = item separator)
	ing := ingress[i]
	rule := {
		"resource": r, "index": i,
		# protocol() and cidrs() written out: this runs per ingress entry, at head and in after-states.
		"protocol": lower(util.text(object.get(ing, "protocol", "-1"))),
		"from": object.get(ing, "fromPort", 0), "to": object.get(ing, "toPort", 0),
		"cidrs": array.concat(util.as_list(object.get(ing, "cidrBlocks", [])), util.as_list(object.get(ing, "ipv6CidrBlocks", []))),
	}
] if {
	r.type in inline_sg_types
} else := [rule |
	util.input_value(r, "type", "") == "ingress"
	rule := {
		"resource": r, "index": 0,
		"protocol": protocol(util.input_value(r, "protocol", "-1")),
		"from": util.input_value(r, "fromPort", 0), "to": util.input_value(r, "toPort", 0),
		"cidrs": cidrs(util.input_value(r, "cidrBlocks", []), util.input_value(r, "ipv6CidrBlocks", [])),
	}
] if {
	r.type == sg_rule_type
} else := [rule |
	rule := {
		"resource": r, "index": 0,
		"protocol": protocol(util.input_value(r, "ipProtocol", "-1")),
		"from": util.input_value(r, "fromPort", 0), "to": util.input_value(r, "toPort", 0),
		"cidrs": cidrs(util.input_value(r, "cidrIpv4", []), util.input_value(r, "cidrIpv6", [])),
	}
] if {
	r.type == vpc_ingress_type
} else := [] if {
	not r.type in exposure_types
}

# Every ingress rule at head.
ingress_rules(doc) := [rule |
	some r in util.resources_of_types(doc, exposure_types)
	some rule in rules_of(r)
]

# The policy input's ingress rules, evaluated once per query and shared by the GB-NET rules (rego-cpp
# memoises complete rules, not function calls).
input_ingress_rules := ingress_rules(input)

# Those of them open to the world, filtered once for GB-NET-001, 002, 004 and 005 (whose results all
# require world_open and so are the same over this list as over every ingress rule).
# world_open written out: a function call per rule costs OPA more than the test itself.
input_world_open_rules := [rule | some rule in input_ingress_rules; count([c | some c in rule.cidrs; c in world_cidrs]) > 0]

# Protocols that carry TCP/UDP ports; "-1" / "all" means every protocol and every port.
all_protocols := {"-1", "all"}

port_protocols := {"tcp", "udp", "6", "17"}

world_cidrs := {world_ipv4, world_ipv6}

# One body: regorus evaluates every body of a function on each call.
world_open(rule) if {
	some c in rule.cidrs
	c in world_cidrs
}

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
