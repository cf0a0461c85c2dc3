# METADATA
# title: Change not declared in the agent's intent manifest
# description: >-
#   On an agent PR, every planned resource change must match an entry of evidence.expected_changes
#   (project, stack, type, name and action). An undeclared delete or replace is a deny; an
#   undeclared create or update is a warning.
# custom:
#   id: GB-CHG-002
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-CM-3, NIST-CM-5]
#   remediation: >-
#     Declare every resource the change touches in expected_changes, or narrow the code change so
#     the plan matches the declared intent.
package glassbox.change.gb_chg_002

import rego.v1

import data.glassbox.lib.util

# concat fails on a non-string field, leaving the key undefined: such a change then counts as
# undeclared (safe), and such a manifest entry as absent.
manifest_key(x) := concat("|", [x.project, x.stack, x.type, x.name, x.action])

declared(doc) := sort([manifest_key(e) | some e in util.as_list(object.get(doc.evidence, "expected_changes", []))])

planned(doc) := sort([manifest_key(c) | some c in util.changes(doc)])

applies(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
}

# Each key list is built once. Fast path: when the sorted lists are equal nothing is undeclared;
# rego-cpp 1.5.2 scans on every membership test, so the join runs only when they differ.
undeclared(doc) := [c | ps != ds; some c in doc.changes; not manifest_key(c) in ds] if {
	applies(doc)
	ds := declared(doc)
	ps := planned(doc)
}

undeclared(doc) := [] if not applies(doc)

undeclared_result(c) := {
	"msg": util.msg(["undeclared ", c.action, " of ", c.type, " ", c.name, " in ", c.project, "/", c.stack]),
	"resource": object.get(c, "urn", util.msg([c.project, "/", c.stack, "/", c.name])),
	"action": c.action,
}

deny_results(doc) := {undeclared_result(c) | some c in undeclared(doc); c.action in {"delete", "replace"}}

warn_results(doc) := {undeclared_result(c) | some c in undeclared(doc); c.action in {"create", "update"}}

deny contains result if {
	some result in deny_results(input)
}

warn contains result if {
	some result in warn_results(input)
}
