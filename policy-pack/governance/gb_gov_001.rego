# METADATA
# title: Agent changes a governance path
# description: >-
#   Agents may not change policy-pack/, registry/, .github/, CODEOWNERS or .glassbox/ (invariant
#   I2); the only exception is the single decision record the agent's own PR adds under
#   .glassbox/decisions/.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-GOV-001
#   severity: critical
#   controls: [SOC2-CC8.1, ISO27001-A.5.3, ISO27001-A.8.32, NIST-CM-5]
#   remediation: >-
#     Governance changes are made by humans and approved at the critical tier.
package glassbox.governance.gb_gov_001

import rego.v1

import data.glassbox.lib.governance
import data.glassbox.lib.util

deny_results(doc) := {result |
	util.is_agent_pr(doc)
	some p in governance.governed(doc)
	result := {"msg": util.msg(["agent PR changes governance path ", p]), "resource": p}
}

deny contains result if {
	some result in deny_results(input)
}
