# METADATA
# title: Public S3 bucket ACL
# description: >-
#   A bucket ACL (inline `acl` on the bucket or a BucketAcl resource) that grants public-read,
#   public-read-write or authenticated-read, or a grant to the AllUsers / AuthenticatedUsers groups.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-001
#   severity: critical
#   controls: [SOC2-CC6.1, ISO27001-A.8.3, NIST-AC-3, CIS-AWS-2.1.4]
#   remediation: >-
#     Use the private ACL (or BucketOwnerEnforced object ownership) and serve public content through
#     CloudFront with origin access control.
package glassbox.data.gb_data_001

import rego.v1

import data.glassbox.lib.s3
import data.glassbox.lib.util

public_group(uri) if contains(uri, "acs.amazonaws.com/groups/global/AllUsers")

public_group(uri) if contains(uri, "acs.amazonaws.com/groups/global/AuthenticatedUsers")

deny_results(doc) := {result |
	some r in util.resources_of_types(doc, s3.bucket_types | s3.acl_types)
	acl := object.get(object.get(r, "inputs", {}), "acl", "private")
	acl in s3.public_acls
	result := {"msg": util.msg([r.type, " ", r.name, " sets the public ACL ", acl]), "resource": util.resource_ref(r), "acl": acl}
} | {result |
	some r in util.resources_of_types(doc, s3.acl_types)
	acp := util.input_value(r, "accessControlPolicy", {})
	some g in util.as_list(object.get(acp, "grants", []))
	uri := object.get(object.get(g, "grantee", {}), "uri", "")
	public_group(uri)
	result := {"msg": util.msg([r.type, " ", r.name, " grants ", object.get(g, "permission", "?"), " to ", uri]), "resource": util.resource_ref(r), "acl": "grant"}
}

deny contains result if {
	some result in deny_results(input)
}
