package glassbox.data.gb_data_009_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_009 as rule

test_allow_protected if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"deletionProtection": true})]))) == 0
}

test_deny_unprotected if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"deletionProtection": false})]))) == 1
}

test_edge_dev_unprotected_is_fine if {
	count(rule.deny_results(f.plan_input([f.dev_res("aws:rds/cluster:Cluster", "db", {})]))) == 0
}
