# METADATA
# title: Governance path helpers
# description: >-
#   Which changed paths are governance paths (policy-pack/, registry/, .github/, CODEOWNERS,
#   .glassbox/). An agent PR may add exactly one decision record under .glassbox/decisions/.
package glassbox.lib.governance

import rego.v1

import data.glassbox.lib.util

default_prefixes := ["policy-pack/", "registry/", ".github/", "CODEOWNERS", ".glassbox/"]

prefixes(doc) := p if {
	p := object.get(object.get(doc, "registry", {}), "governance_paths", null)
	is_array(p)
	count(p) > 0
}

# Fail closed: no configured list means the built-in list.
prefixes(doc) := default_prefixes if {
	p := object.get(object.get(doc, "registry", {}), "governance_paths", null)
	not non_empty_array(p)
}

non_empty_array(p) if {
	is_array(p)
	count(p) > 0
}

files(doc) := object.get(doc, "files", {})

# GitHub also reads CODEOWNERS from docs/ and .github/; any file so named counts.
governance_path(doc, path) if {
	some prefix in prefixes(doc)
	startswith(path, prefix)
}

governance_path(doc, path) if {
	parts := split(path, "/")
	parts[count(parts) - 1] == "CODEOWNERS"
}

# Every touched governance path: what the check reported plus what the prefixes match.
touched(doc) := {p | some p in util.as_list(object.get(files(doc), "governance_paths", []))} | {p |
	some p in util.as_list(object.get(files(doc), "changed_paths", []))
	governance_path(doc, p)
}

is_decision_record(path) if {
	startswith(path, ".glassbox/decisions/")
	endswith(path, ".json")
	not contains(path, "..")
}

decision_records(doc) := {p | some p in touched(doc); is_decision_record(p)}

# The one decision record an agent PR carries is allowed; two or more are all governed.
allowed(doc) := {p |
	some p in decision_records(doc)
	util.is_agent_pr(doc)
	count(decision_records(doc)) == 1
}

governed(doc) := touched(doc) - allowed(doc)
