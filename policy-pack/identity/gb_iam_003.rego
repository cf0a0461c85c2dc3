# METADATA
# title: Write actions on every resource
# description: >-
#   An Allow statement whose Resource is '*' and whose actions include a write (any verb other than
#   Get/List/Describe/Head/...). Read-only statements on '*' are fine.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-IAM-003
#   severity: high
#   controls: [SOC2-CC6.1, SOC2-CC6.3, ISO27001-A.8.2, NIST-AC-6]
#   remediation: >-
#     Scope write actions to the ARNs they must touch (or use condition keys such as
#     aws:ResourceTag).
package glassbox.identity.gb_iam_003

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.util

deny_results(doc) := iam003_deny_from(iam.allow_statements(doc))

# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny`/`warn` dedupe anyway.
iam003_deny_from(items) := [result |
	some a in items
	"*" in iam.statement_resources(a.stmt)
	writes := [x | some x in a.actions; iam.is_write(x)]
	count(writes) > 0
	result := {
		"msg": util.msg([a.resource.type, " ", a.resource.name, " (", a.field, ") allows ", concat(",", writes), " on every resource"]),
		"resource": util.resource_ref(a.resource),
		"actions": writes,
	}
]

deny contains result if {
	some result in iam003_deny_from(iam.input_allow_statements)
}
