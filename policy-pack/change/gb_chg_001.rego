# METADATA
# title: Delete or replace in prod
# description: >-
#   A resource change in a prod environment whose action is delete or replace. Agents may not do
#   this (deny); for a human PR it is a warning that asks reviewers to confirm the data and downtime
#   impact.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-CHG-001
#   severity: high
#   controls: [SOC2-CC8.1, ISO27001-A.8.32, NIST-CM-3, NIST-CP-9]
#   remediation: >-
#     For agents: hand the change to a human owner. For humans: confirm backups or snapshots and the
#     replacement plan; prefer create-before-delete.
package glassbox.change.gb_chg_001

import rego.v1

import data.glassbox.lib.util

# Tested once per class of the derived index (changes sharing type, action and environment).
destructive_changes(doc) := [c | some i in ids; c := doc.changes[i]] if {
	ids := util.group_positions([g | some g in doc.index.change_classes; destructive(util.representative(doc, g))])
}

destructive(c) if {
	c.action in {"delete", "replace"}
	util.is_prod(c.environment)
}

destructive_result(c) := {
	"msg": util.msg([c.action, " of ", c.type, " ", c.name, " in ", c.project, "/", c.stack, " (prod)"]),
	"resource": object.get(c, "urn", util.msg([c.project, "/", c.stack, "/", c.name])),
	"action": c.action,
}

deny_results(doc) := {destructive_result(c) | some c in destructive_changes(doc)} if util.is_agent_pr(doc)

deny_results(doc) := set() if not util.is_agent_pr(doc)

warn_results(doc) := {destructive_result(c) | some c in destructive_changes(doc)} if not util.is_agent_pr(doc)

warn_results(doc) := set() if util.is_agent_pr(doc)

deny contains result if {
	some result in deny_results(input)
}

warn contains result if {
	some result in warn_results(input)
}
