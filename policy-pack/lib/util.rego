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
as_list(x) := x if is_array(x)

as_list(x) := [v | some v in x] if is_set(x)

as_list(x) := [x] if {
	not is_array(x)
	not is_set(x)
	not is_null(x)
}

as_list(x) := [] if is_null(x)

# Plain references, not object.get: rego-cpp 1.5.2 copies a builtin's arguments and result, which
# costs a deep copy of the whole plan per call. The engine checks these keys exist before evaluating.
resources(doc) := doc.plan.resources

changes(doc) := doc.changes

# The resources at head of one type token, or of any token in a set.
resources_of_type(doc, t) := [r | some r in resources(doc); r.type == t]

resources_of_types(doc, ts) := [r | some r in resources(doc); r.type in ts]

# Where a result points: the URN when known, else project/stack/name.
resource_ref(r) := r.urn if is_string(object.get(r, "urn", null))

resource_ref(r) := concat("/", [text(object.get(r, "project", "")), text(object.get(r, "stack", "")), text(object.get(r, "name", ""))]) if {
	not is_string(object.get(r, "urn", null))
}

# An input of a resource, or the fallback when the key is absent or null.
input_value(r, key, fallback) := v if {
	v := object.get(object.get(r, "inputs", {}), key, null)
	not is_null(v)
}

input_value(r, key, fallback) := fallback if {
	is_null(object.get(object.get(r, "inputs", {}), key, null))
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
text(x) := x if is_string(x)

text(x) := sprintf("%v", [x]) if not is_string(x)

# A message from parts, joined without separators: util.msg(["bucket ", b.name, " is public"]).
msg(parts) := concat("", [text(p) | some p in parts])

# The agent's registry entry as an object ({} for a human PR), safe under object.get.
agent_obj(doc) := a if {
	a := agent_entry(doc)
	is_object(a)
}

agent_obj(doc) := {} if not is_object(agent_entry(doc))
