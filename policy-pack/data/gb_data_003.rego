# METADATA
# title: S3 public access block missing or incomplete
# description: >-
#   Every bucket needs a BucketPublicAccessBlock with blockPublicAcls, blockPublicPolicy,
#   ignorePublicAcls and restrictPublicBuckets all true. A missing block is a deny in prod and a
#   warning elsewhere; a block with any setting off is a deny.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-DATA-003
#   severity: high
#   controls: [SOC2-CC6.1, ISO27001-A.8.3, NIST-AC-3, CIS-AWS-2.1.4]
#   remediation: >-
#     Add an aws.s3.BucketPublicAccessBlock for the bucket with all four settings true.
package glassbox.data.gb_data_003

import rego.v1

import data.glassbox.lib.s3
import data.glassbox.lib.util

settings := ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]

unblocked(doc) := s3.unreferenced(doc, s3.pab_types)

deny_results(doc) := data003_deny_from(doc, unblocked(doc))

warn_results(doc) := data003_warn_from(unblocked(doc))

# The buckets without a block come as an argument: the input's are computed once (lib.s3) for deny and warn.
data003_deny_from(doc, buckets) := {result |
	some b in buckets
	util.is_prod(b.environment)
	result := {"msg": util.msg(["bucket ", b.name, " in ", b.environment, " has no public access block"]), "resource": util.resource_ref(b)}
} | {result |
	some pab in util.resources_of_types(doc, s3.pab_types)
	# util.input_value(pab, s, false) != true, with the inputs looked up once per block: a null setting
	# is off either way.
	pab_inputs := object.get(pab, "inputs", {})
	off := [s | some s in settings; object.get(pab_inputs, s, false) != true]
	count(off) > 0
	result := {
		"msg": util.msg(["public access block ", pab.name, " leaves ", concat(", ", off), " off"]),
		"resource": util.resource_ref(pab),
		"settings_off": off,
	}
}

data003_warn_from(buckets) := {result |
	some b in buckets
	not util.is_prod(b.environment)
	result := {"msg": util.msg(["bucket ", b.name, " in ", b.environment, " has no public access block"]), "resource": util.resource_ref(b)}
}

deny contains result if {
	some result in data003_deny_from(input, s3.input_unreferenced_pab)
}

warn contains result if {
	some result in data003_warn_from(s3.input_unreferenced_pab)
}
