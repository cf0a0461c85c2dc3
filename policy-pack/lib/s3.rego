# METADATA
# title: S3 helpers
# description: >-
#   Buckets and their companion resources (public access block, SSE, versioning, ACL, policy).
#   A companion names its bucket through its `bucket` input; under the plan's mock runtime a
#   referenced bucket's id is its logical name, so we match on the bucket's `bucket` input or its name,
#   within the same project and stack.
package glassbox.lib.s3

import rego.v1

import data.glassbox.lib.util

bucket_types := {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}

pab_types := {"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"}

sse_types := {
	"aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
	"aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
}

versioning_types := {
	"aws:s3/bucketVersioning:BucketVersioning",
	"aws:s3/bucketVersioningV2:BucketVersioningV2",
}

acl_types := {"aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2"}

policy_types := {"aws:s3/bucketPolicy:BucketPolicy"}

public_acls := {"public-read", "public-read-write", "authenticated-read"}

buckets(doc) := util.resources_of_types(doc, bucket_types)

# The names a companion resource may use to point at a bucket.
bucket_keys(b) := {k | some k in [b.name, util.input_value(b, "bucket", null)]; is_string(k)}

# concat, not sprintf: rego-cpp 1.5.2 sprintf("%v") quoted some string values inside keys.
scope_key(r, k) := concat("|", [object.get(r, "project", ""), object.get(r, "stack", ""), k])

# "project|stack|bucket-ref" of every companion of the given types, as a list: rego-cpp 1.5.2 builds sets
# in quadratic time and scans on lookup anyway, so cross-resource rules test membership in this one
# list instead of joining resource lists.
refs(doc, types) := [scope_key(c, util.input_value(c, "bucket", "")) | some c in util.resources_of_types(doc, types)]

# Buckets of the document that no companion in refs points at.
unreferenced(doc, refs) := [b |
	some b in buckets(doc)
	count([k | some k in bucket_keys(b); scope_key(b, k) in refs]) == 0
]
