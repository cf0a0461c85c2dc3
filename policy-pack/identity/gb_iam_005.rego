# METADATA
# title: Role trust policy open to any principal
# description: >-
#   A role whose assumeRolePolicy allows Principal '*' or AWS '*' to assume it: anyone in any
#   account could take the role (conditions are easy to get wrong, so this is denied even with a
#   Condition).
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-IAM-005
#   severity: critical
#   controls: [SOC2-CC6.1, SOC2-CC6.3, ISO27001-A.8.2, NIST-AC-6, NIST-AC-3]
#   remediation: >-
#     Name the trusted accounts, roles or services in the trust policy; add sts:ExternalId or
#     aws:PrincipalOrgID conditions for cross-account trust.
package glassbox.identity.gb_iam_005

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.util

deny_results(doc) := {result |
	some r in util.resources_of_type(doc, "aws:iam/role:Role")
	trust := util.input_value(r, "assumeRolePolicy", null)
	not is_null(trust)
	some stmt in iam.statements(trust)
	iam.allow(stmt)
	iam.principal_is_world(object.get(stmt, "Principal", null))
	result := {"msg": util.msg(["role ", r.name, " can be assumed by any principal"]), "resource": util.resource_ref(r)}
}

deny contains result if {
	some result in deny_results(input)
}
