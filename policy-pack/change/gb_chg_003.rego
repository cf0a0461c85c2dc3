# METADATA
# title: Declared change missing from the plan
# description: >-
#   An entry of the agent's evidence.expected_changes that the plan does not produce: the agent's
#   model of the change and the code disagree, which reviewers should know.
# custom:
#   id: GB-CHG-003
#   severity: low
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-CM-3]
#   remediation: >-
#     Remove the stale entry from expected_changes, or fix the code so it makes the declared change.
package glassbox.change.gb_chg_003

import rego.v1

import data.glassbox.lib.util

planned_key(x) := concat("|", [x.project, x.stack, x.type, x.name, x.action])

planned(doc) := sort([planned_key(c) | some c in util.changes(doc)])

declared(doc) := sort([planned_key(e) | some e in util.as_list(object.get(doc.evidence, "expected_changes", []))])

warn_results(doc) := {result |
	keys != ds
	some e in expected
	not planned_key(e) in keys
	result := {
		"msg": util.msg(["declared ", e.action, " of ", e.type, " ", e.name, " in ", e.project, "/", e.stack, " is not in the plan"]),
		"resource": util.msg([e.project, "/", e.stack, "/", e.name]),
	}
} if {
	checked(doc)
	keys := planned(doc)
	ds := declared(doc)
	expected := util.as_list(object.get(doc.evidence, "expected_changes", []))
}

warn_results(doc) := set() if not checked(doc)

checked(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
}

warn contains result if {
	some result in warn_results(input)
}
