# METADATA
# title: Administrator policy attached
# description: >-
#   AdministratorAccess or IAMFullAccess attached to a role, user or group (RolePolicyAttachment,
#   UserPolicyAttachment, GroupPolicyAttachment, PolicyAttachment, or a role's managedPolicyArns).
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-IAM-004
#   severity: critical
#   controls: [SOC2-CC6.1, SOC2-CC6.3, ISO27001-A.8.2, NIST-AC-6, CIS-AWS-1.16]
#   remediation: >-
#     Grant a least-privilege policy instead; keep administrator access behind break-glass roles
#     outside agent reach.
package glassbox.identity.gb_iam_004

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.util

attachment_types := {
	"aws:iam/rolePolicyAttachment:RolePolicyAttachment",
	"aws:iam/userPolicyAttachment:UserPolicyAttachment",
	"aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
	"aws:iam/policyAttachment:PolicyAttachment",
}

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, attachment_types)
	arn := util.input_value(r, "policyArn", "")
	iam.is_admin_arn(arn)
	result := {"msg": util.msg([r.type, " ", r.name, " attaches ", arn]), "resource": util.resource_ref(r), "policy_arn": arn}
} | {result |
	some r in util.resources_of_type(doc, "aws:iam/role:Role")
	some arn in util.as_list(util.input_value(r, "managedPolicyArns", []))
	iam.is_admin_arn(arn)
	result := {"msg": util.msg(["role ", r.name, " lists ", arn, " in managedPolicyArns"]), "resource": util.resource_ref(r), "policy_arn": arn}
}

deny contains result if {
	some result in deny_results(input)
}
