# METADATA
# title: Intent manifest keys
# description: >-
#   The planned changes and the declared expected_changes of an agent PR as sorted key lists
#   ("project|stack|type|name|action"), shared by GB-CHG-002 and GB-CHG-003. The input's lists are
#   complete rules, so one query of the change area builds each list once (rego-cpp 1.5.2 memoises
#   complete rules, not function calls).
package glassbox.lib.manifest

import rego.v1

import data.glassbox.lib.util

# A change's or a manifest entry's key: its five fields joined with "|", defined only when the text has exactly
# four of them. A field holding "|" could otherwise make another row's text (a declared type "T|x" named "y" and
# an undeclared change of type T named "x|y" both read "...|T|x|y|..."), so such a row has no key, as has a row
# with a missing or non-string field: a change without a key counts as undeclared (safe), an entry as not planned.
# So a resource whose own name holds "|" cannot be declared: its change is reported, for a reviewer to judge.
mf_key(x) := k if {
	k := concat("|", [x.project, x.stack, x.type, x.name, x.action])
	count(split(k, "|")) == 5
}

# mf_key written out inline: these run once per row, and a function call costs regorus about as much as the
# concat itself.
mf_declared(doc) := sort([k |
	some e in mf_expected(doc)
	k := concat("|", [e.project, e.stack, e.type, e.name, e.action])
	count(split(k, "|")) == 5
])

mf_planned(doc) := sort([k |
	some c in util.changes(doc)
	k := concat("|", [c.project, c.stack, c.type, c.name, c.action])
	count(split(k, "|")) == 5
])

# Rows whose key is not among the other side's keys, then (only when some row has none) the rows without a key.
# Fast path: when the sorted lists are equal and every row has a key, nothing is left over; rego-cpp 1.5.2 scans
# on every membership test, so the join runs only when they differ. The key is bound before the membership test:
# OPA hoists a call out of `not f(x) in s`, so a row without a key would drop out instead of being left over.
mf_undeclared(changes, ps, ds) := array.concat(
	[c | ps != ds; some c in changes; k := mf_key(c); not k in ds],
	[c | count(ps) != count(changes); some c in changes; not mf_keyed(c)],
)

# Manifest entries whose key is not planned (same fast path).
mf_unplanned(expected, ps, ds) := array.concat(
	[e | ps != ds; some e in expected; k := mf_key(e); not k in ps],
	[e | count(ds) != count(expected); some e in expected; not mf_keyed(e)],
)

mf_keyed(x) if mf_key(x)

mf_expected(doc) := util.as_list(object.get(doc.evidence, "expected_changes", []))

mf_checked(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
}

# The input's lists, once per query (an agent PR with evidence only). They live here, not in the rule
# packages, because data.glassbox.lib is never part of the engine's answer: rego-cpp 1.5.2 writes
# invalid JSON for some strings (policy documents in change states) when asked to output them.
input_planned := mf_planned(input)

input_declared := mf_declared(input)

input_undeclared := mf_undeclared(input.changes, input_planned, input_declared) if mf_checked(input)

input_undeclared := [] if not mf_checked(input)

input_unplanned := mf_unplanned(mf_expected(input), input_planned, input_declared) if mf_checked(input)

input_unplanned := [] if not mf_checked(input)
