# METADATA
# title: Risk tier above the agent's ceiling
# description: >-
#   On an agent PR, the computed risk tier (glassbox.risk) must not exceed
#   registry.agent.scope.max_risk. A missing ceiling counts as low.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-SCOPE-003
#   severity: high
#   controls: [SOC2-CC6.3, ISO27001-A.5.15, NIST-AC-6, NIST-CM-5, SOC2-CC8.1]
#   remediation: >-
#     Split the change into lower-risk steps, or hand it to a human; the ceiling itself is set by
#     the agent's owner in the registry.
package glassbox.scope.gb_scope_003

import rego.v1

import data.glassbox.lib.util
import data.glassbox.risk

ceiling(doc) := object.get(object.get(util.agent_obj(doc), "scope", {}), "max_risk", "low")

deny_results_at(doc, computed) := {result |
	util.is_agent_pr(doc)
	limit := ceiling(doc)
	object.get(util.tier_rank, computed, 3) > object.get(util.tier_rank, limit, 0)
	result := {
		"msg": util.msg(["risk tier ", computed, " is above the agent's ceiling ", limit]),
		"resource": "plan",
		"tier": computed,
	}
}

deny contains result if {
	some result in deny_results_at(input, risk.tier)
}
