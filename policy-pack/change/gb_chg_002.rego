# METADATA
# title: Change not declared in the agent's intent manifest
# description: >-
#   On an agent PR, every planned resource change must match an entry of evidence.expected_changes
#   (project, stack, type, name and action). An undeclared delete or replace is a deny; an
#   undeclared create or update is a warning.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-CHG-002
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-CM-3, NIST-CM-5]
#   remediation: >-
#     Declare every resource the change touches in expected_changes, or narrow the code change so
#     the plan matches the declared intent.
package glassbox.change.gb_chg_002

import rego.v1

import data.glassbox.lib.manifest
import data.glassbox.lib.util

# Keys are lib.manifest's mf_key: a change whose key is undefined (a missing or non-string field, or a "|" in
# one) counts as undeclared (safe), and such a manifest entry as not planned (GB-CHG-003).
applies(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
}

# Each key list is built once (lib.manifest), and the join runs only when the sorted lists differ.
undeclared(doc) := manifest.mf_undeclared(doc.changes, manifest.mf_planned(doc), manifest.mf_declared(doc)) if applies(doc)

undeclared(doc) := [] if not applies(doc)

undeclared_result(c) := {
	"msg": util.msg(["undeclared ", c.action, " of ", c.type, " ", c.name, " in ", c.project, "/", c.stack]),
	"resource": object.get(c, "urn", util.msg([c.project, "/", c.stack, "/", c.name])),
	"action": c.action,
}

deny_among(us) := {undeclared_result(c) | some c in us; c.action in {"delete", "replace"}}

warn_among(us) := {undeclared_result(c) | some c in us; c.action in {"create", "update"}}

deny_results(doc) := deny_among(undeclared(doc))

warn_results(doc) := warn_among(undeclared(doc))

# The input's undeclared changes come from lib.manifest: computed once for both deny and warn.
deny contains result if {
	some result in deny_among(manifest.input_undeclared)
}

warn contains result if {
	some result in warn_among(manifest.input_undeclared)
}
