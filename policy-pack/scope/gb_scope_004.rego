# METADATA
# title: Agent not registered or not active
# description: >-
#   An agent PR whose agent has no registry entry, whose entry is not active, or whose entry id
#   differs from the PR's agent id.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-SCOPE-004
#   severity: critical
#   controls: [SOC2-CC6.3, ISO27001-A.5.15, NIST-AC-6, NIST-CM-5]
#   remediation: >-
#     Register the agent (registry/agents.yaml) with status active through a governance change
#     before it opens PRs.
package glassbox.scope.gb_scope_004

import rego.v1

import data.glassbox.lib.util

deny_results(doc) := {{"msg": "agent PR without a registry entry", "resource": "registry"} |
	util.is_agent_pr(doc)
	not is_object(util.agent_entry(doc))
} | {result |
	util.is_agent_pr(doc)
	entry := util.agent_entry(doc)
	is_object(entry)
	status := object.get(entry, "status", "missing")
	status != "active"
	result := {"msg": util.msg(["agent ", object.get(entry, "id", "?"), " is ", status]), "resource": "registry"}
} | {result |
	util.is_agent_pr(doc)
	entry := util.agent_entry(doc)
	is_object(entry)
	is_string(doc.pr.agent_id)
	object.get(entry, "id", null) != doc.pr.agent_id
	result := {"msg": util.msg(["PR agent ", doc.pr.agent_id, " does not match registry entry ", object.get(entry, "id", "?")]), "resource": "registry"}
}

deny contains result if {
	some result in deny_results(input)
}
