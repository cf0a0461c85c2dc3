package glassbox.risk_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.risk

test_no_changes_is_low if {
	inp := f.agent_input([])
	risk.tier_of(inp) == "low"
	"low: only tag-only, dev-only or no resource changes" in risk.reasons_of(inp)
}

test_dev_compute_change_is_low if {
	risk.tier_of(f.agent_input([f.change("aws:ec2/instance:Instance", "vm", "update", "dev")])) == "low"
}

test_tag_only_prod_change_is_low if {
	c := object.union(f.change("aws:ec2/instance:Instance", "vm", "update", "prod"), {"changed": [{"path": "tags.Owner", "before": "a", "after": "b"}]})
	risk.tier_of(f.agent_input([c])) == "low"
}

test_prod_change_is_medium if {
	c := object.union(f.change("aws:ec2/instance:Instance", "vm", "update", "prod"), {"changed": [{"path": "instanceType", "before": "t3.small", "after": "t3.large"}]})
	risk.tier_of(f.agent_input([c])) == "medium"
}

test_dev_data_store_change_is_medium if {
	risk.tier_of(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")])) == "medium"
}

test_iam_change_is_high if {
	risk.tier_of(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")])) == "high"
}

test_prod_delete_is_high if {
	risk.tier_of(f.agent_input([f.change("aws:ec2/instance:Instance", "vm", "delete", "prod")])) == "high"
}

test_network_exposure_is_high if {
	after := {"ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]}
	c := object.union(f.change("aws:ec2/securityGroup:SecurityGroup", "lb", "update", "dev"), {"after": after})
	risk.tier_of(f.agent_input([c])) == "high"
}

test_governance_path_is_critical_for_humans if {
	inp := f.with_governance(f.human_input([]), ["policy-pack/network/gb_net_001.rego"], ["policy-pack/network/gb_net_001.rego"])
	risk.tier_of(inp) == "critical"
}

test_docs_codeowners_is_governance if {
	risk.tier_of(f.with_governance(f.human_input([]), ["docs/CODEOWNERS"], ["docs/CODEOWNERS"])) == "critical"
}

test_agent_single_decision_record_is_not_governance if {
	inp := f.with_paths(f.agent_input([]), [".glassbox/decisions/2026/11/abc.json"])
	risk.tier_of(inp) == "low"
}

test_agent_two_decision_records_are_governance if {
	# the check leaves out only the PR's own record (a.json); the other is reported
	inp := f.with_governance(f.agent_input([]), [".glassbox/decisions/2026/11/a.json", ".glassbox/decisions/2026/11/b.json"], [".glassbox/decisions/2026/11/b.json"])
	risk.tier_of(inp) == "critical"
}

test_claim_only_raises if {
	inp := f.with_evidence(f.agent_input([f.change("aws:iam/role:Role", "r", "create", "dev")]), {"claimed_risk": "low"})
	risk.tier_of(inp) == "high"
	inp2 := f.with_evidence(f.agent_input([]), {"claimed_risk": "high"})
	risk.tier_of(inp2) == "high"
	some r in risk.reasons_of(inp2)
	startswith(r, "high: the agent claimed")
}

test_low_confidence_escalates_one_tier if {
	inp := f.with_evidence(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "create", "dev")]), {"confidence_score": 0.5})
	risk.tier_of(inp) == "high"
	some r in risk.reasons_of(inp)
	startswith(r, "escalated one tier to high: confidence 0.5")
}

test_escalation_caps_at_critical if {
	inp := f.with_evidence(f.with_governance(f.agent_input([]), ["registry/agents.yaml"], ["registry/agents.yaml"]), {"confidence_score": 0.1})
	risk.tier_of(inp) == "critical"
}

test_missing_confidence_escalates_agent_pr if {
	inp := f.patched(f.agent_input([]), {"evidence": f.evidence_without("confidence_score")})
	risk.tier_of(inp) == "medium"
}

test_tag_only_iam_change_is_low if {
	c := object.union(f.change("aws:iam/role:Role", "r", "update", "dev"), {"changed": [{"path": "tags.Owner", "before": "a", "after": "b"}]})
	risk.tier_of(f.agent_input([c])) == "low"
}

test_reasons_summarise_many_changes if {
	cs := [f.change("aws:iam/role:Role", sprintf("r%d", [i]), "create", "dev") | some i in numbers.range(1, 8)]
	reasons := risk.reasons_of(f.agent_input(cs))
	count(reasons) == 1
	some r in reasons
	startswith(r, "high: IAM change (8): ")
	endswith(r, " and 3 more")
}

test_agent_written_program_is_at_least_high if {
	inp := f.with_paths(f.agent_input([]), ["infra/app/__main__.py"])
	risk.tier_of(inp) == "high"
	some r in risk.reasons_of(inp)
	startswith(r, "high: agent-written code needs a human owner")
	contains(r, "infra/app/__main__.py")
}

test_agent_makefile_and_shadow_stack_file_are_code if {
	risk.tier_of(f.with_paths(f.agent_input([]), ["Makefile"])) == "high"
	risk.tier_of(f.with_paths(f.agent_input([]), ["infra/app/Pulumi.prod.yml"])) == "high"
	risk.tier_of(f.with_paths(f.agent_input([]), ["infra/app/Pulumi.yaml"])) == "high"
}

test_agent_stack_config_stays_low if {
	risk.tier_of(f.with_paths(f.agent_input([]), ["infra/app/Pulumi.dev.yaml"])) == "low"
	risk.tier_of(f.with_paths(f.agent_input([]), ["docs/runbooks/backups.md", "infra/app/NOTES.txt"])) == "low"
}

test_agent_script_disguised_as_prose_is_code if {
	risk.tier_of(f.with_paths(f.agent_input([]), ["infra/app/setup.md.sh"])) == "high"
}

test_human_program_change_is_not_raised_by_the_agent_rule if {
	risk.tier_of(f.with_paths(f.human_input([]), ["infra/app/__main__.py"])) == "low"
}
