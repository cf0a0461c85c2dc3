# METADATA
# title: Declared change missing from the plan
# description: >-
#   An entry of the agent's evidence.expected_changes that the plan does not produce: the agent's
#   model of the change and the code disagree, which reviewers should know.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-CHG-003
#   severity: low
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-CM-3]
#   remediation: >-
#     Remove the stale entry from expected_changes, or fix the code so it makes the declared change.
package glassbox.change.gb_chg_003

import rego.v1

import data.glassbox.lib.manifest
import data.glassbox.lib.util

unplanned_result(e) := {
	"msg": util.msg(["declared ", e.action, " of ", e.type, " ", e.name, " in ", e.project, "/", e.stack, " is not in the plan"]),
	"resource": util.msg([e.project, "/", e.stack, "/", e.name]),
}

missing_from_plan(unplanned) := {unplanned_result(e) | some e in unplanned}

# Key lists from lib.manifest, shared with GB-CHG-002; the join runs only when the sorted lists differ.
warn_results(doc) := missing_from_plan(manifest.mf_unplanned(manifest.mf_expected(doc), manifest.mf_planned(doc), manifest.mf_declared(doc))) if checked(doc)

warn_results(doc) := set() if not checked(doc)

checked(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
}

warn contains result if {
	some result in missing_from_plan(manifest.input_unplanned)
}
