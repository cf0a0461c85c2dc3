# METADATA
# title: Service-wide wildcard on a sensitive service
# description: >-
#   An Allow statement with an action like iam:*, kms:*, s3:*, sts:* or secretsmanager:* (a full
#   service wildcard on a service that controls identity, keys or data).
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-IAM-002
#   severity: high
#   controls: [SOC2-CC6.1, SOC2-CC6.3, ISO27001-A.8.2, NIST-AC-6]
#   remediation: >-
#     Replace the service wildcard with the specific actions the workload needs.
package glassbox.identity.gb_iam_002

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.util

deny_results(doc) := iam002_deny_from(iam.allow_statements(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
iam002_deny_from(items) := [result |
	some a in items
	some action in a.actions
	parts := split(action, ":")
	count(parts) == 2
	parts[1] == "*"
	parts[0] in iam.sensitive_services
	result := {
		"msg": util.msg([a.resource.type, " ", a.resource.name, " (", a.field, ") allows ", action]),
		"resource": util.resource_ref(a.resource),
		"action": action,
	}
]

deny contains result if {
	some result in iam002_deny_from(iam.input_allow_statements)
}
