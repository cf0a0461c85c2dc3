package glassbox.data.gb_data_006_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_006 as rule

test_allow_private_db if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"publiclyAccessible": false})]))) == 0
}

test_deny_public_db if {
	count(rule.deny_results(f.plan_input([f.res("aws:rds/instance:Instance", "db", {"publiclyAccessible": true})]))) == 1
}

test_edge_cluster_instance_and_default if {
	inp := f.plan_input([
		f.dev_res("aws:rds/clusterInstance:ClusterInstance", "c1", {"publiclyAccessible": true}),
		f.res("aws:rds/instance:Instance", "db", {}),
	])
	count(rule.deny_results(inp)) == 1
}
