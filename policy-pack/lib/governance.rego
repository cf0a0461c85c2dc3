# METADATA
# title: Governance path helpers
# description: >-
#   Which changed paths are governance paths. The check computes them with the one predicate the
#   bot uses everywhere (policy-pack/, registry/, .github/, .glassbox/ at any depth, CODEOWNERS,
#   .gitattributes, .gitmodules and .lfsconfig anywhere, under case and Unicode folding) and hands
#   the result over as files.governance_paths, with the single decision record an agent PR adds
#   for itself already left out. The pack never re-derives the list, so Python and Rego cannot
#   disagree about what is governance.
package glassbox.lib.governance

import rego.v1

import data.glassbox.lib.util

files(doc) := object.get(doc, "files", {})

governed(doc) := {p | some p in util.as_list(object.get(files(doc), "governance_paths", []))}
