# METADATA
# title: Database ports open to the world
# description: >-
#   Ingress from 0.0.0.0/0 or ::/0 to a database port (MySQL 3306, PostgreSQL 5432, SQL Server 1433,
#   Oracle 1521, Redis 6379, MongoDB 27017), inline or as a separate rule resource, including ranges
#   and protocol -1.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-NET-002
#   severity: critical
#   controls: [SOC2-CC6.6, ISO27001-A.8.20, NIST-SC-7, CIS-AWS-5.3]
#   remediation: >-
#     Allow the database port only from the application's security group or private subnets; reach
#     databases from outside through a bastion or VPN.
package glassbox.network.gb_net_002

import rego.v1

import data.glassbox.lib.network
import data.glassbox.lib.util

deny_results(doc) := net002_deny_from(network.ingress_rules(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
net002_deny_from(items) := [result |
	some rule in items
	network.world_open(rule)
	some port in network.database_ports
	network.covers_port(rule, port)
	result := {
		"msg": util.msg([rule.resource.type, " ", rule.resource.name, " allows ", network.describe(rule), " to database port ", port]),
		"resource": util.resource_ref(rule.resource),
		"port": port,
	}
]

deny contains result if {
	some result in net002_deny_from(network.input_world_open_rules)
}
