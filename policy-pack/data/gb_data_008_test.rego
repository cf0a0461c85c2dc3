package glassbox.data.gb_data_008_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_008 as rule

test_allow_seven_days if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"backupRetentionPeriod": 7})]))) == 0
}

test_deny_one_day if {
	some d in rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"backupRetentionPeriod": 1})]))
	d.days == 1
}

test_edge_absent_counts_as_zero if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/cluster:Cluster", "db", {})]))) == 1
}

test_edge_dev_is_fine if {
	count(rule.deny_results(f.plan_input([f.dev_res("aws:rds/instance:Instance", "db", {"backupRetentionPeriod": 0})]))) == 0
}
