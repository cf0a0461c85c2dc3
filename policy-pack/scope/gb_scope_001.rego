# METADATA
# title: Resource type outside the agent's scope
# description: >-
#   On an agent PR, every changed resource's type must match one of
#   registry.agent.scope.resource_types (globs such as aws:s3/*). An agent with no resource_types
#   may change no resource.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-SCOPE-001
#   severity: high
#   controls: [SOC2-CC6.3, ISO27001-A.5.15, NIST-AC-6, NIST-CM-5]
#   remediation: >-
#     Have a human make this change, or ask the agent's owner team to widen the agent's scope in the
#     registry (a governance change).
package glassbox.scope.gb_scope_001

import rego.v1

import data.glassbox.lib.util

# Types are tested once per group of the derived index (changes of one type), not once per change.
# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny` dedupes anyway.
deny_results(doc) := [result |
	some i in outside
	c := changes[i]
	result := {
		"msg": util.msg([c.type, " ", c.name, " is outside the agent's resource types"]),
		"resource": object.get(c, "urn", util.msg([c.project, "/", c.stack, "/", c.name])),
		"type": c.type,
	}
] if {
	util.is_agent_pr(doc)
	scope := object.get(object.get(util.agent_obj(doc), "scope", {}), "resource_types", [])
	changes := util.changes(doc)
	outside := util.group_positions([g | some g in doc.index.change_types; not util.glob_any(scope, util.representative(doc, g).type)])
}

deny_results(doc) := [] if not util.is_agent_pr(doc)

deny contains result if {
	some result in deny_results(input)
}
