# METADATA
# title: Stack outside the agent's scope
# description: >-
#   On an agent PR, every change's stack must match registry.agent.scope.stacks, given either as a
#   stack name (dev) or project/stack (network/dev), globs allowed.
# schemas:
#   - input: schema.policy_input
# custom:
#   id: GB-SCOPE-002
#   severity: high
#   controls: [SOC2-CC6.3, ISO27001-A.5.15, NIST-AC-6, NIST-CM-5]
#   remediation: >-
#     Limit the change to the stacks the agent may touch, or have a human make it.
package glassbox.scope.gb_scope_002

import rego.v1

import data.glassbox.lib.util

in_scope(scope, c) if util.glob_any(scope, c.stack)

in_scope(scope, c) if util.glob_any(scope, concat("/", [c.project, c.stack]))

# Stacks are tested once per group of the derived index (changes of one project and stack).
# A list, not a set: rego-cpp 1.5.2 builds sets in quadratic time; `deny` dedupes anyway.
deny_results(doc) := [result |
	some i in outside
	c := changes[i]
	result := {
		"msg": util.msg(["change to ", c.type, " ", c.name, " in ", c.project, "/", c.stack, " is outside the agent's stacks"]),
		"resource": object.get(c, "urn", util.msg([c.project, "/", c.stack, "/", c.name])),
		"stack": c.stack,
	}
] if {
	util.is_agent_pr(doc)
	scope := object.get(object.get(util.agent_obj(doc), "scope", {}), "stacks", [])
	changes := util.changes(doc)
	outside := util.group_positions([g | some g in doc.index.change_stacks; not in_scope(scope, util.representative(doc, g))])
}

deny_results(doc) := [] if not util.is_agent_pr(doc)

deny contains result if {
	some result in deny_results(input)
}
