# METADATA
# title: IAM policy allows every action
# description: >-
#   An Allow statement with Action '*' in an identity policy (Policy, RolePolicy, UserPolicy,
#   GroupPolicy or a role's inline policy). Action may be a string or a list.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-IAM-001
#   severity: critical
#   controls: [SOC2-CC6.1, SOC2-CC6.3, ISO27001-A.8.2, NIST-AC-6, CIS-AWS-1.16]
#   remediation: >-
#     List the actions the workload needs; start from IAM Access Analyzer's generated policy.
package glassbox.identity.gb_iam_001

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.util

deny_results(doc) := iam001_deny_from(iam.allow_statements(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
iam001_deny_from(items) := [result |
	some a in items
	"*" in a.actions
	result := {"msg": util.msg([a.resource.type, " ", a.resource.name, " (", a.field, ") allows every action"]), "resource": util.resource_ref(a.resource)}
]

deny contains result if {
	some result in iam001_deny_from(iam.input_allow_statements)
}
