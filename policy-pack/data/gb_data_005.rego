# METADATA
# title: S3 versioning off in prod
# description: >-
#   A prod bucket without versioning enabled, either inline (versioning.enabled) or through a
#   BucketVersioning resource whose status is Enabled.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-005
#   severity: medium
#   controls: [SOC2-A1.2, ISO27001-A.8.13, NIST-CP-9]
#   remediation: >-
#     Add an aws.s3.BucketVersioning with versioningConfiguration.status = Enabled for the bucket,
#     and a lifecycle rule for noncurrent versions.
package glassbox.data.gb_data_005

import rego.v1

import data.glassbox.lib.s3
import data.glassbox.lib.util

enabled_inline(b) if object.get(util.input_value(b, "versioning", {}), "enabled", false) == true

# A versioning resource with status Enabled points at the bucket (looked up in the derived index).
enabled_versioning(doc, b) if {
	some k in s3.bucket_keys(b)
	some i in s3.companions_at(doc, s3.scope_key(b, k))
	v := doc.plan.resources[i]
	v.type in s3.versioning_types
	object.get(util.input_value(v, "versioningConfiguration", {}), "status", "") == "Enabled"
}

deny_results(doc) := {result |
	some b in s3.buckets(doc)
	util.is_prod(b.environment)
	not enabled_versioning(doc, b)
	not enabled_inline(b)
	result := {"msg": util.msg(["bucket ", b.name, " in ", b.environment, " does not have versioning enabled"]), "resource": util.resource_ref(b)}
}

deny contains result if {
	some result in deny_results(input)
}
