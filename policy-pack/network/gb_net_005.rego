# METADATA
# title: Other ports open to the world
# description: >-
#   Ingress from 0.0.0.0/0 or ::/0 to a port that is neither an admin nor a database port (e.g.
#   443): often intended for public services, so a warning that asks a reviewer to confirm.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-NET-005
#   severity: medium
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7]
#   remediation: >-
#     Confirm the service is meant to be public; prefer a load balancer or CDN in front of it, and
#     narrow the source where possible.
package glassbox.network.gb_net_005

import rego.v1

import data.glassbox.lib.network
import data.glassbox.lib.util

warn_results(doc) := net005_warn_from(network.ingress_rules(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
net005_warn_from(items) := [result |
	some rule in items
	network.world_open(rule)
	not network.all_ports(rule)
	not sensitive(rule)
	result := {
		"msg": util.msg([rule.resource.type, " ", rule.resource.name, " is reachable from the internet: ", network.describe(rule)]),
		"resource": util.resource_ref(rule.resource),
	}
]

sensitive(rule) if {
	some port in network.admin_ports | network.database_ports
	network.covers_port(rule, port)
}

warn contains result if {
	some result in net005_warn_from(network.input_world_open_rules)
}
