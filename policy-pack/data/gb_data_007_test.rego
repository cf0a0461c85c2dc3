package glassbox.data.gb_data_007_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_007 as rule

test_allow_encrypted if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"storageEncrypted": true})]))) == 0
}

test_deny_missing_flag if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/cluster:Cluster", "db", {"engine": "aurora-postgresql"})]))) == 1
}

test_edge_replica_skipped if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "replica", {"replicateSourceDb": "db"})]))) == 0
}
