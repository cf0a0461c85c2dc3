# METADATA
# title: IAM policy document helpers
# description: >-
#   Finds every IAM policy document in the plan (policies, inline and role policies, trust
#   policies) and normalises statements so Action/Resource/Principal may be a string or a list.
package glassbox.lib.iam

import rego.v1

import data.glassbox.lib.util

# Policy documents arrive as JSON strings; an object is accepted too. Unparseable → no statements.
# An else chain: regorus evaluates every body of a function on each call (validating the JSON twice).
parse_doc(d) := json.unmarshal(d) if {
	is_string(d)
	json.is_valid(d)
} else := d if {
	is_object(d)
} else := {} if {
	is_string(d)
}

statements(d) := util.as_list(object.get(parse_doc(d), "Statement", []))

allow(stmt) if object.get(stmt, "Effect", "") == "Allow"

actions(stmt) := [lower(a) | some a in util.as_list(object.get(stmt, "Action", []))]

statement_resources(stmt) := util.as_list(object.get(stmt, "Resource", []))

identity_policy_types := {
	"aws:iam/policy:Policy",
	"aws:iam/rolePolicy:RolePolicy",
	"aws:iam/userPolicy:UserPolicy",
	"aws:iam/groupPolicy:GroupPolicy",
}

# Identity policy documents at head: {resource, field, doc}.
identity_docs(doc) := array.concat(
	[{"resource": r, "field": "policy", "doc": d} |
		some r in util.resources_of_types(doc, identity_policy_types)
		d := object.get(object.get(r, "inputs", {}), "policy", null)
		not is_null(d)
	],
	[{"resource": r, "field": util.msg(["inlinePolicies[", i, "]"]), "doc": d} |
		some r in util.resources_of_type(doc, "aws:iam/role:Role")
		policies := util.as_list(util.input_value(r, "inlinePolicies", []))
		some i
		p := policies[i]
		d := object.get(p, "policy", null)
		not is_null(d)
	],
)

# Allow statements of every identity document: {resource, field, stmt, actions}, with the statement's
# actions lower-cased once here rather than once per rule.
allow_statements(doc) := [{"resource": d.resource, "field": d.field, "stmt": s, "actions": actions(s)} |
	some d in identity_docs(doc)
	some s in statements(d.doc)
	allow(s)
]

# The policy input's allow statements, evaluated once per query and shared by GB-IAM-001..003 (rego-cpp
# memoises complete rules, not function calls; parsing every policy document is the costly part).
input_allow_statements := allow_statements(input)

# Services whose full wildcard ("svc:*") amounts to account takeover or data exposure.
sensitive_services := {
	"iam", "sts", "kms", "s3", "organizations", "secretsmanager", "ssm",
	"ec2", "rds", "lambda", "cloudtrail", "dynamodb",
}

# Read-only verb prefixes; any other verb is treated as a write.
read_prefixes := ["get", "list", "describe", "head", "view", "search", "lookup", "query", "scan", "select", "batchget"]

read_verb(verb) if strings.any_prefix_match(verb, read_prefixes)

is_write(action) if action == "*"

is_write(action) if {
	parts := split(action, ":")
	count(parts) == 2
	not read_verb(parts[1])
}

# A principal of "*" or {"AWS": "*"} (string or list) lets anyone in.
principal_is_world(p) if p == "*"

principal_is_world(p) if {
	is_object(p)
	some v in util.as_list(object.get(p, "AWS", []))
	v == "*"
}

admin_policy_names := {"AdministratorAccess", "IAMFullAccess"}

is_admin_arn(arn) if {
	is_string(arn)
	some n in admin_policy_names
	endswith(arn, concat("", [":policy/", n]))
}
