package glassbox.change.gb_chg_001_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.change.gb_chg_001 as rule

test_allow_prod_update if {
	inp := f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "update", "prod")])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 0
}

test_deny_agent_prod_replace if {
	some d in rule.deny_results(f.agent_input([f.change("aws:rds/instance:Instance", "db", "replace", "prod")]))
	d.action == "replace"
}

test_warn_human_prod_delete if {
	inp := f.human_input([f.change("aws:rds/instance:Instance", "db", "delete", "prod")])
	count(rule.deny_results(inp)) == 0
	count(rule.warn_results(inp)) == 1
}

test_edge_dev_delete_by_agent if {
	count(rule.deny_results(f.agent_input([f.change("aws:s3/bucket:Bucket", "b", "delete", "dev")]))) == 0
}
