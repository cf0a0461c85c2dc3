# METADATA
# title: Public S3 bucket policy
# description: >-
#   A bucket policy (inline on the bucket or a BucketPolicy resource) with an Allow statement for
#   Principal '*' (or AWS: '*') and no Condition narrowing who may use it.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-002
#   severity: critical
#   controls: [SOC2-CC6.1, ISO27001-A.8.3, NIST-AC-3, CIS-AWS-2.1.4]
#   remediation: >-
#     Name the principals that need access, or add a Condition (aws:SourceVpce, aws:PrincipalOrgID,
#     aws:SourceArn); serve public content through CloudFront.
package glassbox.data.gb_data_002

import rego.v1

import data.glassbox.lib.iam
import data.glassbox.lib.s3
import data.glassbox.lib.util

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, s3.bucket_types | s3.policy_types)
	pol := object.get(object.get(r, "inputs", {}), "policy", null)
	not is_null(pol)
	some stmt in iam.statements(pol)
	iam.allow(stmt)
	iam.principal_is_world(object.get(stmt, "Principal", null))
	count(object.get(stmt, "Condition", {})) == 0
	result := {
		"msg": util.msg([r.type, " ", r.name, " allows ", concat(",", iam.actions(stmt)), " to anyone"]),
		"resource": util.resource_ref(r),
	}
}

deny contains result if {
	some result in deny_results(input)
}
