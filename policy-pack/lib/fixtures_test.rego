# METADATA
# title: Test fixtures
# description: Builders for policy inputs shared by the *_test.rego files (loaded only when testing).
package glassbox.lib.fixtures_test

import rego.v1

import data.glassbox.lib.s3
import data.glassbox.lib.util

# Strings are joined with concat, not sprintf: rego-cpp 1.5.2's sprintf renders a string that is
# itself a function argument with its JSON quotes ("x" instead of x).

res(t, name, inputs) := {
	"urn": concat("::", ["urn:pulumi:prod", "app", t, name]),
	"project": "app", "stack": "prod", "environment": "prod",
	"type": t, "name": name, "parent": null, "provider": null, "protect": false,
	"dependencies": [], "inputs": inputs,
}

dev_res(t, name, inputs) := {
	"urn": concat("::", ["urn:pulumi:dev", "app", t, name]),
	"project": "app", "stack": "dev", "environment": "dev",
	"type": t, "name": name, "parent": null, "provider": null, "protect": false,
	"dependencies": [], "inputs": inputs,
}

human_pr := {"number": 1, "author": {"id": "alice", "kind": "human"}, "agent_id": null, "base_ref": "main", "head_sha": "0000000000000000000000000000000000000000"}

agent_pr := {"number": 2, "author": {"id": "cost-optimizer", "kind": "agent"}, "agent_id": "cost-optimizer", "base_ref": "main", "head_sha": "0000000000000000000000000000000000000000"}

governance_paths := ["policy-pack/", "registry/", ".github/", "CODEOWNERS", ".glassbox/"]

agent_entry := {
	"id": "cost-optimizer",
	"status": "active",
	"confidence_threshold": 0.7,
	"scope": {
		"paths": ["infra/**"],
		"stacks": ["dev", "prod"],
		"resource_types": ["aws:s3/*", "aws:ec2/*"],
		"max_risk": "high",
	},
}

good_evidence := {
	"present": true, "digest_verified": true, "digest": "sha256:00",
	"agent_id": "cost-optimizer", "requested_by": "alice",
	"model": {"provider": "p", "model_id": "m-1", "version": "1"},
	"prompt": {"template_id": "t", "template_version": "1", "template_sha256": "ab"},
	"evidence_sources": [{"kind": "runbook", "uri": "u", "version": "1", "sha256": "ab", "retrieval_id": "r"}],
	"confidence_score": 0.9, "has_rollback_plan": true, "has_expected_impact": true,
	"expected_changes": [], "claimed_risk": null,
}

# The engine's derived index (docs/contracts.md, bot.policy.engine.derive_index), rebuilt in Rego for the
# inputs tests make; group order may differ from the engine's, which rules never depend on.
fx_res_positions(resources, t) := [i | some i; r := resources[i]; r.type == t]

fx_bucket_key(r) := s3.scope_key(r, util.input_value(r, "bucket", ""))

fx_bucket_positions(resources, k) := [i | some i; r := resources[i]; fx_bucket_key(r) == k]

fx_type_key(c) := json.marshal([object.get(c, "type", null)])

fx_stack_key(c) := json.marshal([object.get(c, "project", null), object.get(c, "stack", null)])

fx_class_key(c) := json.marshal([
	object.get(c, "type", null), object.get(c, "action", null), object.get(c, "environment", null),
	sort({json.marshal(object.get(x, "path", x)) | some x in util.as_list(object.get(c, "changed", []))}),
])

fx_type_positions(cs, k) := [i | some i; c := cs[i]; fx_type_key(c) == k]

fx_stack_positions(cs, k) := [i | some i; c := cs[i]; fx_stack_key(c) == k]

fx_class_positions(cs, k) := [i | some i; c := cs[i]; fx_class_key(c) == k]

# Groups in order of their first change, as the engine lists them.
index_of(resources, cs) := {
	"resources_by_type": {t: ps | some r in resources; t := r.type; ps := fx_res_positions(resources, t)},
	"bucket_companions": {k: ps | some r in resources; k := fx_bucket_key(r); ps := fx_bucket_positions(resources, k)},
	"change_types": [{"changes": ps} | some i; c := cs[i]; ps := fx_type_positions(cs, fx_type_key(c)); ps[0] == i],
	"change_stacks": [{"changes": ps} | some i; c := cs[i]; ps := fx_stack_positions(cs, fx_stack_key(c)); ps[0] == i],
	"change_classes": [{"changes": ps} | some i; c := cs[i]; ps := fx_class_positions(cs, fx_class_key(c)); ps[0] == i],
}

# A human PR over these head resources and no changes.
plan_input(resources) := {
	"index": index_of(resources, []),
	"plan": {"digest": "sha256:00", "stacks": [], "resources": resources},
	"changes": [],
	"files": {"changed_paths": [], "governance_paths": []},
	"evidence": {"present": false},
	"pr": human_pr,
	"registry": {"agent": null, "governance_paths": governance_paths},
	"now": "2026-11-25T10:00:00+00:00",
}

change(t, name, action, env) := {
	"project": "app", "stack": env, "environment": env,
	"urn": concat("::", [concat(":", ["urn:pulumi", env]), "app", t, name]),
	"type": t, "name": name, "action": action, "replace_predicted": false,
	"changed": [], "before": null, "after": null,
}

# An agent PR with good evidence over these changes.
agent_input(changes) := {
	"index": index_of([], changes),
	"plan": {"digest": "sha256:00", "stacks": [], "resources": []},
	"changes": changes,
	"files": {"changed_paths": ["infra/app/Pulumi.dev.yaml"], "governance_paths": []},
	"evidence": good_evidence,
	"pr": agent_pr,
	"registry": {"agent": agent_entry, "governance_paths": governance_paths},
	"now": "2026-11-25T10:00:00+00:00",
}

human_input(changes) := patched(agent_input(changes), {"evidence": {"present": false}, "pr": human_pr, "registry": {"agent": null, "governance_paths": governance_paths}})

# obj with the top-level keys of patch replaced (never merged below them). object.union alone is not
# engine-neutral here: OPA and regorus merge nested objects, rego-cpp 1.5.2 replaces them.
patched(obj, patch) := object.union(object.remove(obj, object.keys(patch)), patch)

with_evidence(doc, patch) := patched(doc, {"evidence": patched(doc.evidence, patch)})

with_agent(doc, patch) := patched(doc, {"registry": patched(doc.registry, {"agent": patched(doc.registry.agent, patch)})})

with_scope(doc, patch) := with_agent(doc, {"scope": patched(doc.registry.agent.scope, patch)})

with_paths(doc, paths) := patched(doc, {"files": {"changed_paths": paths, "governance_paths": []}})

# Changed paths of which the check reported `governance` as governance paths.
with_governance(doc, paths, governance) := patched(doc, {"files": {"changed_paths": paths, "governance_paths": governance}})

# Evidence without one key.
evidence_without(key) := {k: v | some k; v := good_evidence[k]; k != key}
