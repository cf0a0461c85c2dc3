# METADATA
# title: Risk tier
# description: >-
#   The change's risk tier (low | medium | high | critical) and the reasons for it, computed from
#   structured plan, file and registry fields only (free text never enters). Governance paths make a
#   change critical; agent-written code (anything but stack configuration), IAM changes, deletes/replaces in prod and network exposure make it high; other
#   prod changes and data-store changes make it medium; tag-only and dev-only changes stay low.
#   The agent's claimed tier can only raise the result, and a confidence score below the agent's
#   threshold escalates it one tier.
# schemas:
#   - input: schema.policy_input
package glassbox.risk

import rego.v1

import data.glassbox.lib.governance
import data.glassbox.lib.network
import data.glassbox.lib.util

# Provider modules ("aws:s3" of "aws:s3/bucket:Bucket") whose resources hold or protect data.
data_store_modules := {"aws:s3", "aws:rds", "aws:kms", "aws:dynamodb", "aws:elasticache", "aws:efs", "aws:docdb", "aws:redshift"}

destructive_actions := {"delete", "replace"}

tag_only(c) if {
	c.action == "update"
	changed := util.as_list(object.get(c, "changed", []))
	count(changed) > 0
	every x in changed {
		tag_path(x.path)
	}
}

tag_path(p) if p == "tags"

tag_path(p) if p == "tagsAll"

tag_path(p) if startswith(p, "tags.")

tag_path(p) if startswith(p, "tagsAll.")

# One split and one lookup per change instead of a startswith per prefix (rego-cpp is slow per call).
data_store(t) if split(t, "/")[0] in data_store_modules

label(c) := util.msg([c.action, " ", c.type, " ", c.name, " in ", c.project, "/", c.stack])

# The after-state as a resource, for the exposure helpers.
exposes_after(c) if {
	c.type in network.exposure_types
	is_object(c.after)
	network.exposes({"type": c.type, "inputs": c.after})
}

# One entry per reason category: its count and the labels of its first changes. Reasons are per
# category (count + first labels), not per change: a set of thousands of strings costs quadratic
# time in rego-cpp 1.5.2, and reviewers read a summary better anyway.
#
# Changes are taken by class from the derived index (docs/contracts.md): a class shares type, action,
# environment and changed paths, so each test below runs once per class on its representative, not once
# per change. Only the exposure test reads `after` and runs per change, on the few exposure-type changes.
categories(doc) := [
	{"rank": 3, "title": "critical: governance path changed", "count": count(gov), "shown": array.slice(gov, 0, shown)},
	{"rank": 2, "title": code_title, "count": count(code), "shown": array.slice(code, 0, shown)},
	change_category(cs, iam_groups, 2, "high: IAM change"),
	change_category(cs, destructive_groups, 2, "high: destructive change in prod"),
	exposure_category(cs, exposed_groups),
	change_category(cs, prod_groups, 1, "medium: prod change"),
	change_category(cs, data_groups, 1, "medium: data-store change"),
] if {
	cs := util.changes(doc)
	classes := doc.index.change_classes
	gov := sort([p | some p in governance.governed(doc)])
	code := sort([p | some p in agent_code(doc)])
	iam_groups := [g | some g in classes; iam_class(util.representative(doc, g))]
	destructive_groups := [g | some g in classes; destructive_class(util.representative(doc, g))]
	exposed_groups := [e |
		some g in classes
		exposure_class(util.representative(doc, g))
		kept := [i | some i in g.changes; exposes_after(cs[i])]
		count(kept) > 0
		e := {"changes": kept}
	]
	prod_groups := [g | some g in classes; prod_class(util.representative(doc, g))]
	data_groups := [g | some g in classes; data_class(util.representative(doc, g))]
}

# Agent-written code is never auto-merged: the plan of a program an agent wrote is what that program chose
# to show, so a change by an agent to anything but stack configuration or prose needs a human owner.
code_title := "high: agent-written code needs a human owner (its plan is what that code chose to show; only stack configuration and prose ride the low tier)"

agent_code(doc) := {p |
	util.is_agent_pr(doc)
	some p in util.as_list(object.get(governance.files(doc), "changed_paths", []))
	not inert(p)
	not startswith(p, ".glassbox/decisions/")
}

# What a change by an agent may touch and stay below high: stack configuration, and prose nothing executes.
inert(path) if stack_config(path)

inert(path) if {
	some ext in prose_extensions
	endswith(lower(path), ext)
}

prose_extensions := {".md", ".txt", ".rst"}

# A stack's configuration: `Pulumi.<stack>.yaml`, the file Pulumi reads for a stack (not the project's
# `Pulumi.yaml`, which names the program to run, nor a `.yml` Pulumi never reads).
stack_config(path) if {
	parts := split(path, "/")
	name := parts[count(parts) - 1]
	startswith(name, "Pulumi.")
	endswith(name, ".yaml")
	name != "Pulumi.yaml"
}

iam_class(c) if {
	startswith(c.type, "aws:iam/")
	not tag_only(c)
}

destructive_class(c) if {
	c.action in destructive_actions
	util.is_prod(c.environment)
}

exposure_class(c) if {
	c.type in network.exposure_types
	not tag_only(c)
}

prod_class(c) if {
	util.is_prod(c.environment)
	not tag_only(c)
}

data_class(c) if {
	data_store(c.type)
	not tag_only(c)
}

shown := 5

# Labels only for the changes shown: building a label per change is the costly part at 1,000 changes.
change_category(cs, groups, rank, title) := {"rank": rank, "title": title, "count": util.group_count(groups), "shown": labels} if {
	labels := [l | some i in util.leading_positions(groups, shown); l := label(cs[i])]
}

# Filtering per change breaks the groups' order by first position: rank the first few of every group.
exposure_category(cs, groups) := {"rank": 2, "title": "high: network exposure to the internet", "count": util.group_count(groups), "shown": labels} if {
	firsts := [i | some g in groups; some i in array.slice(g.changes, 0, shown)]
	labels := [l | some i in util.ranked(firsts, shown); l := label(cs[i])]
}

reason(cat) := util.msg([cat.title, " (", cat.count, "): ", concat(", ", cat.shown), more(cat.count)])

more(n) := "" if n <= shown

more(n) := util.msg([" and ", n - shown, " more"]) if n > shown

findings(doc) := [{"rank": cat.rank, "reason": reason(cat)} | some cat in categories(doc); cat.count > 0]

evidence(doc) := object.get(doc, "evidence", {})

claimed(doc) := object.get(evidence(doc), "claimed_risk", null)

threshold(doc) := object.get(util.agent_obj(doc), "confidence_threshold", null)

# Escalate when an agent's score is below its threshold, or when the score is missing (fail closed).
low_confidence(doc) if {
	util.evidence_present(doc)
	is_number(threshold(doc))
	score := object.get(evidence(doc), "confidence_score", null)
	is_number(score)
	score < threshold(doc)
}

low_confidence(doc) if {
	util.is_agent_pr(doc)
	util.evidence_present(doc)
	not is_number(object.get(evidence(doc), "confidence_score", null))
}

# Everything computed once per document: tiers are ranks until the end, branches are arithmetic,
# so nothing is re-evaluated per reason (rego-cpp does not cache function calls). Messages are built
# before the comprehensions that select them: rego-cpp 1.5.2 mis-scopes outer variables used inside
# a comprehension's head or in a ref's brackets.
assess(doc) := {"tier": final_tier, "reasons": reasons_set} if {
	fs := findings(doc)
	base := max({f.rank | some f in fs} | {0})
	claim := object.get(util.tier_rank, claimed(doc), 0)
	raised := max({base, claim})
	escalate := count({1 | low_confidence(doc)})
	final := min({raised + escalate, 3})
	final_tier := util.tiers[final]
	claim_msg := util.msg([util.tiers[claim], ": the agent claimed this tier, above the computed ", util.tiers[base]])
	confidence_msg := util.msg([
		"escalated one tier to ", final_tier, ": confidence ",
		object.get(evidence(doc), "confidence_score", "missing"),
		" is below the agent's threshold ", object.get(util.agent_obj(doc), "confidence_threshold", "(none)"),
	])
	# Optional reasons by slicing: 0 or 1 items, no conditional comprehension.
	optional := array.concat(
		array.concat(array.slice([claim_msg], 0, min({max({claim - base, 0}), 1})), array.slice([confidence_msg], 0, escalate)),
		array.slice(["low: only tag-only, dev-only or no resource changes"], 0, max({1 - base, 0})),
	)
	reasons_set := {f.reason | some f in fs} | {r | some r in optional}
}

tier_of(doc) := assess(doc).tier

reasons_of(doc) := assess(doc).reasons

# The policy input's assessment, evaluated once per query and shared by the rules that need the tier.
assessment := assess(input)

tier := assessment.tier

reasons := assessment.reasons
