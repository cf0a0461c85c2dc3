# METADATA
# title: Intent manifest keys
# description: >-
#   The planned changes and the declared expected_changes of an agent PR as sorted key lists
#   ([project, stack, type, name, action]), shared by GB-CHG-002 and GB-CHG-003. The input's lists are
#   complete rules, so one query of the change area builds each list once (rego-cpp 1.5.2 memoises
#   complete rules, not function calls).
package glassbox.lib.manifest

import rego.v1

import data.glassbox.lib.util

# A change's or a manifest entry's key: its five fields as an array, compared value by value. No separator
# is involved, so no two different rows share a key however their fields are spelt (a key joined with "|" let
# a declared type "T|x" named "y" stand for an undeclared change of type T named "x|y"). A missing field
# leaves the key undefined: such a change then counts as undeclared (safe), and such an entry as absent.
mf_key(x) := [x.project, x.stack, x.type, x.name, x.action]

# mf_key written out inline: these run once per row, and building the array costs OPA a fraction of what
# joining the five strings did.
mf_declared(doc) := sort([[e.project, e.stack, e.type, e.name, e.action] | some e in mf_expected(doc)])

mf_planned(doc) := sort([[c.project, c.stack, c.type, c.name, c.action] | some c in util.changes(doc)])

# Rows whose key is not among the other side's keys. Fast path: when the sorted lists are equal and every row
# of this side has a key, nothing is left over; rego-cpp 1.5.2 scans on every membership test, so the join
# (over a set of keys, built once) runs only when they differ.
mf_undeclared(changes, ps, ds) := mf_left_over(changes, ps, ds)

# Manifest entries whose key is not planned (same fast path).
mf_unplanned(expected, ps, ds) := mf_left_over(expected, ds, ps)

mf_left_over(rows, own, other) := [x |
	not mf_settled(rows, own, other)
	keys := {k | some k in other}
	some x in rows
	not mf_known(x, keys)
]

# A rule of its own, so that a row without a key is not known: OPA hoists a call out of `not f(x) in s`, which
# then fails with the call instead of holding.
mf_known(x, keys) if mf_key(x) in keys

mf_settled(rows, own, other) if {
	own == other
	count(own) == count(rows)
}

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
