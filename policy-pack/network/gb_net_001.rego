# METADATA
# title: Admin ports open to the world
# description: >-
#   Ingress from 0.0.0.0/0 or ::/0 to SSH (22) or RDP (3389), from an inline security-group rule or
#   a separate rule resource, including port ranges and protocol -1 that cover those ports.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-NET-001
#   severity: critical
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7, CIS-AWS-5.2]
#   remediation: >-
#     Restrict the source to a bastion or VPN range, or use SSM Session Manager instead of opening
#     22/3389.
package glassbox.network.gb_net_001

import rego.v1

import data.glassbox.lib.network
import data.glassbox.lib.util

deny_results(doc) := net001_deny_from(network.ingress_rules(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
net001_deny_from(items) := [result |
	some rule in items
	network.world_open(rule)
	some port in network.admin_ports
	network.covers_port(rule, port)
	result := {
		"msg": util.msg([rule.resource.type, " ", rule.resource.name, " allows ", network.describe(rule), " to admin port ", port]),
		"resource": util.resource_ref(rule.resource),
		"port": port,
	}
]

deny contains result if {
	some result in net001_deny_from(network.input_world_open_rules)
}
