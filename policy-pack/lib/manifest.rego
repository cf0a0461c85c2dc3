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

# concat fails on a non-string field, leaving the key undefined: such a change then counts as
# undeclared (safe), and such a manifest entry as absent.
mf_key(x) := concat("|", [x.project, x.stack, x.type, x.name, x.action])

# mf_key written out inline: these run once per change, and a function call costs regorus about as much
# as the concat itself.
mf_declared(doc) := sort([concat("|", [e.project, e.stack, e.type, e.name, e.action]) |
	some e in util.as_list(object.get(doc.evidence, "expected_changes", []))
])

mf_planned(doc) := sort([concat("|", [c.project, c.stack, c.type, c.name, c.action]) | some c in util.changes(doc)])

# Changes whose key is not declared. Fast path: when the sorted lists are equal nothing is undeclared;
# rego-cpp 1.5.2 scans on every membership test, so the join runs only when they differ.
mf_undeclared(changes, ps, ds) := [c | ps != ds; some c in changes; not mf_key(c) in ds]

# Manifest entries whose key is not planned (same fast path).
mf_unplanned(expected, ps, ds) := [e | ps != ds; some e in expected; not mf_key(e) in ps]

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
