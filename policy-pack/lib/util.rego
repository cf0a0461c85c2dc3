# METADATA
# title: Shared helpers
# description: >-
#   Small helpers every glassbox rule uses. Helpers take the policy document as an argument
#   (`doc`) instead of reading `input`, so rules are plain functions a test can call directly:
#   rego-cpp 1.5.2 fails to compile `with input as` over rules that call builtins.
#   Messages are built with `msg` (concat), not sprintf: rego-cpp 1.5.2's sprintf renders a string
#   that passed through a function parameter with its JSON quotes, which also breaks the JSON output.
package glassbox.lib.util

import rego.v1

# Environments treated as production. Anything else is non-prod.
prod_environments := {"prod", "production", "prd"}

is_prod(env) if {
	is_string(env)
	lower(env) in prod_environments
}

# An agent PR: the PR author is an agent, or the PR names an agent.
is_agent_pr(doc) if doc.pr.author.kind == "agent"

is_agent_pr(doc) if {
	is_string(doc.pr.agent_id)
	doc.pr.agent_id != ""
}

evidence_present(doc) if doc.evidence.present == true

# A value as a list: lists stay, sets become lists, scalars/objects become one item, null becomes empty.
# An else chain, not one body per case: regorus evaluates every body of a function on each call, and
# stops an else chain at the first case that holds (lists, the usual case, come first).
as_list(x) := x if {
	is_array(x)
} else := [v | some v in x] if {
	is_set(x)
} else := [] if {
	is_null(x)
} else := [x]

# Plain references, not object.get: rego-cpp 1.5.2 copies a builtin's arguments and result, which
# costs a deep copy of the whole plan per call. The engine checks these keys exist before evaluating.
resources(doc) := doc.plan.resources

changes(doc) := doc.changes

# The resources at head of one type token, or of any token in a set (grouped by type). They are looked up
# in the engine's derived index (docs/contracts.md) instead of scanning every resource: rego-cpp 1.5.2
# walks a list at microseconds per element and every rule asks for a few types only.
resources_of_type(doc, t) := [r | some i in ids; r := doc.plan.resources[i]] if {
	ids := object.get(doc.index.resources_by_type, t, [])
}

resources_of_types(doc, ts) := [r | some i in ids; r := doc.plan.resources[i]] if {
	by_type := doc.index.resources_by_type
	ids := [i | some t in ts; some i in object.get(by_type, t, [])]
}

# Groups of changes from the derived index: a group shares every field a test reads, so rules test
# its representative (first change) once and then take all its positions.
group_positions(groups) := [i | some g in groups; some i in g.changes]

group_count(groups) := sum([count(g.changes) | some g in groups])

# The first n positions, in plan order, of groups listed in the order of their first position (as the
# index lists them): only the first n groups can hold them. rego-cpp 1.5.2's sort and min order numbers
# as text (sort([9, 10]) == [10, 9]), so the few candidates are ranked by comparison instead.
leading_positions(groups, n) := ranked(cands, n) if {
	cands := [x | some g in array.slice(groups, 0, n); some x in array.slice(g.changes, 0, n)]
}

# The n smallest of a short list of distinct numbers, ascending: each is ranked once by comparison.
ranked(xs, n) := [x | some r in numbers.range(0, n - 1); some p in ranks; p[0] == r; x := p[1]] if {
	ranks := [[rank, x] | some x in xs; rank := count([y | some y in xs; y < x])]
}

representative(doc, g) := doc.changes[g.changes[0]]

# Where a result points: the URN when known, else project/stack/name.
# Plain references, not object.get(r, ...): rego-cpp 1.5.2 deep-copies a builtin's arguments.
resource_ref(r) := r.urn if is_string(r.urn)

resource_ref(r) := concat("/", [text(object.get(r, "project", "")), text(object.get(r, "stack", "")), text(object.get(r, "name", ""))]) if {
	not is_string(r.urn)
}

# An input of a resource, or the fallback when the key is absent or null. One body that picks by type
# name: regorus evaluates every body of a function on each call, and this helper runs per resource.
# Where the fallback cannot change the outcome (a null fallback, a value compared with true, a value
# only kept when it is in a set of strings), rules read object.get(object.get(r, "inputs", {}), key, d)
# instead: a function call per resource costs OPA more than the lookup.
input_value(r, key, fallback) := object.get({"null": fallback}, type_name(v), v) if {
	v := object.get(object.get(r, "inputs", {}), key, null)
}

# Risk tiers, ordered.
tiers := ["low", "medium", "high", "critical"]

tier_rank := {"low": 0, "medium": 1, "high": 2, "critical": 3}

# The agent's registry entry (null for a human PR).
agent_entry(doc) := object.get(object.get(doc, "registry", {}), "agent", null)

# A glob match over type tokens, stacks and paths; "*" matches any run of characters but "/"
# is not special, so "aws:s3/*" matches every S3 type.
glob_any(patterns, value) if {
	some p in as_list(patterns)
	glob.match(p, [], value)
}

# Any value as text: strings as they are, everything else in Rego's rendering (numbers, lists).
text(x) := x if {
	is_string(x)
} else := sprintf("%v", [x])

# A message from parts, joined without separators: util.msg(["bucket ", b.name, " is public"]).
msg(parts) := concat("", [text(p) | some p in parts])

# The agent's registry entry as an object ({} for a human PR), safe under object.get.
agent_obj(doc) := a if {
	a := agent_entry(doc)
	is_object(a)
}

agent_obj(doc) := {} if not is_object(agent_entry(doc))
