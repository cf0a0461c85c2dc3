# METADATA
# title: Agent provenance missing
# description: >-
#   An agent's evidence must name the model (model.model_id) and the prompt template hash
#   (prompt.template_sha256). Missing provenance is a deny when the risk tier is medium or above and
#   a warning below.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-EVD-003
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-AU-10, NIST-CM-3]
#   remediation: >-
#     Record the model id and prompt template hash in the ChangeRequest; `glassbox propose` copies
#     them into the evidence.
package glassbox.evidence.gb_evd_003

import rego.v1

import data.glassbox.lib.util
import data.glassbox.risk

provenance_blank(x) if not is_string(x)

provenance_blank(x) if {
	is_string(x)
	trim_space(x) == ""
}

provenance_missing(doc) := [m |
	some m in ["model.model_id", "prompt.template_sha256"]
	parts := split(m, ".")
	provenance_blank(object.get(object.get(doc.evidence, parts[0], {}), parts[1], null))
]

provenance_gaps(doc) := [{"msg": util.msg(["agent evidence lacks ", m]), "resource": "evidence", "field": m} |
	util.is_agent_pr(doc)
	util.evidence_present(doc)
	some m in provenance_missing(doc)
]

# The tier gates deny vs warn; it is an argument so tests can pass any tier.
deny_results_at(doc, computed) := {x |
	object.get(util.tier_rank, computed, 3) >= 1
	some x in provenance_gaps(doc)
}

warn_results_at(doc, computed) := {x |
	object.get(util.tier_rank, computed, 3) < 1
	some x in provenance_gaps(doc)
}

deny contains result if {
	some result in deny_results_at(input, risk.tier)
}

warn contains result if {
	some result in warn_results_at(input, risk.tier)
}
