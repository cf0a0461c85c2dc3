# METADATA
# title: Human changes a governance path
# description: >-
#   A human PR that changes a governance path is allowed but is tier critical (glassbox.risk), so it
#   needs the critical approvers; this warning names each path for reviewers.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-GOV-002
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.5.3, ISO27001-A.8.32, NIST-CM-5]
#   remediation: >-
#     Get the approvals the critical tier requires; keep governance changes separate from
#     infrastructure changes.
package glassbox.governance.gb_gov_002

import rego.v1

import data.glassbox.lib.governance
import data.glassbox.lib.util

warn_results(doc) := {result |
	not util.is_agent_pr(doc)
	some p in governance.governed(doc)
	result := {"msg": util.msg(["governance path ", p, " changed: tier critical, critical approvers required"]), "resource": p}
}

warn contains result if {
	some result in warn_results(input)
}
