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
bucket_keys(b) := {k | some k in [b.name, object.get(object.get(b, "inputs", {}), "bucket", null)]; is_string(k)}

# concat, not sprintf: rego-cpp 1.5.2 sprintf("%v") quoted some string values inside keys.
scope_key(r, k) := concat("|", [object.get(r, "project", ""), object.get(r, "stack", ""), k])

# Resources whose `bucket` input names scope key k ("project|stack|bucket-ref"), by position: the
# derived index's bucket_companions (docs/contracts.md). A lookup per bucket key instead of a join of
# every bucket with every companion (quadratic in rego-cpp 1.5.2, which scans lists on membership).
companions_at(doc, k) := object.get(doc.index.bucket_companions, k, [])

# The types of the companions that point at bucket b (one entry per reference). bucket_keys, scope_key
# and companions_at are written out inline: this runs per bucket, and each function call costs regorus
# about as much as the lookup itself (a key listed twice only repeats a type).
companion_types(doc, b) := [t |
	some k in [b.name, object.get(object.get(b, "inputs", {}), "bucket", null)]
	is_string(k)
	some i in object.get(doc.index.bucket_companions, concat("|", [object.get(b, "project", ""), object.get(b, "stack", ""), k]), [])
	t := doc.plan.resources[i].type
]

# Some companion of the given types points at bucket b.
referenced(doc, b, types) if {
	some t in companion_types(doc, b)
	t in types
}

# Buckets of the document that no companion of the given types points at.
unreferenced(doc, types) := [b | some b in buckets(doc); not referenced(doc, b, types)]

# The policy input's buckets with their companions' types, looked up once per query, and the buckets
# without a public access block or an SSE configuration resource among them, shared by each rule's deny
# and warn (neither rego-cpp nor regorus memoises function calls, so rules calling unreferenced(input, ...)
# from both deny and warn would join every bucket twice per type).
input_bucket_companion_types := [{"bucket": b, "types": companion_types(input, b)} | some b in buckets(input)]

input_unreferenced_pab := [e.bucket | some e in input_bucket_companion_types; count([t | some t in e.types; t in pab_types]) == 0]

input_unreferenced_sse := [e.bucket | some e in input_bucket_companion_types; count([t | some t in e.types; t in sse_types]) == 0]
