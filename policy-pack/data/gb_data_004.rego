# METADATA
# title: S3 bucket without explicit server-side encryption
# description: >-
#   A bucket with neither an inline serverSideEncryptionConfiguration nor a
#   BucketServerSideEncryptionConfiguration resource pointing at it. A deny in prod, a warning
#   elsewhere.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-004
#   severity: medium
#   controls: [SOC2-CC6.1, ISO27001-A.8.24, NIST-SC-28]
#   remediation: >-
#     Add an aws.s3.BucketServerSideEncryptionConfiguration (SSE-KMS with a customer key for
#     sensitive data) for the bucket.
package glassbox.data.gb_data_004

import rego.v1

import data.glassbox.lib.s3
import data.glassbox.lib.util

unencrypted(doc) := unencrypted_among(s3.unreferenced(doc, s3.sse_types))

# The buckets without an SSE resource come as an argument: the input's are computed once (lib.s3) for
# deny and warn.
unencrypted_among(buckets) := [b |
	some b in buckets
	is_null(object.get(object.get(b, "inputs", {}), "serverSideEncryptionConfiguration", null))
]

deny_results(doc) := data004_deny_from(unencrypted(doc))

warn_results(doc) := data004_warn_from(unencrypted(doc))

data004_deny_from(buckets) := {result |
	some b in buckets
	util.is_prod(b.environment)
	result := {"msg": util.msg(["bucket ", b.name, " in ", b.environment, " has no server-side encryption configuration"]), "resource": util.resource_ref(b)}
}

data004_warn_from(buckets) := {result |
	some b in buckets
	not util.is_prod(b.environment)
	result := {"msg": util.msg(["bucket ", b.name, " in ", b.environment, " has no server-side encryption configuration"]), "resource": util.resource_ref(b)}
}

deny contains result if {
	some result in data004_deny_from(unencrypted_among(s3.input_unreferenced_sse))
}

warn contains result if {
	some result in data004_warn_from(unencrypted_among(s3.input_unreferenced_sse))
}
