package glassbox.data.gb_data_010_test

import rego.v1

import data.glassbox.lib.fixtures_test as f
import data.glassbox.data.gb_data_010 as rule

test_allow_rotating_key if {
	count(rule.deny_results(f.plan_input([f.res("aws:kms/key:Key", "k", {"enableKeyRotation": true})]))) == 0
}

test_deny_default_key if {
	count(rule.deny_results(f.plan_input([f.res("aws:kms/key:Key", "k", {"description": "data"})]))) == 1
}

test_edge_asymmetric_key_skipped if {
	k := f.res("aws:kms/key:Key", "sign", {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"})
	count(rule.deny_results(f.plan_input([k]))) == 0
}
