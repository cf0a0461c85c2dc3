# METADATA
# title: All traffic open to the world
# description: >-
#   Ingress from 0.0.0.0/0 or ::/0 for every protocol (-1) or the full port range 0-65535 exposes
#   every listening service.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-NET-004
#   severity: critical
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7]
#   remediation: >-
#     Open only the ports the service needs, from the narrowest source that works; put public
#     services behind a load balancer.
package glassbox.network.gb_net_004

import rego.v1

import data.glassbox.lib.network
import data.glassbox.lib.util

deny_results(doc) := net004_deny_from(network.ingress_rules(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
net004_deny_from(items) := [result |
	some rule in items
	network.world_open(rule)
	network.all_ports(rule)
	result := {
		"msg": util.msg([rule.resource.type, " ", rule.resource.name, " allows all traffic: ", network.describe(rule)]),
		"resource": util.resource_ref(rule.resource),
	}
]

deny contains result if {
	some result in net004_deny_from(network.input_world_open_rules)
}
