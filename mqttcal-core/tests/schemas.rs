//! Capability schemas, snapshot-tested as committed JSON: a change of a `map` reply is a
//! change of the wire contract and must show in review.
//!
//! Set `MQTTCAL_UPDATE_SNAPSHOTS=1` to rewrite the snapshots after an intended change.

mod common;

use std::path::PathBuf;

use serde_json::Value;

fn check(name: &str, actual: &Value) {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "snapshots",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    mqttcal_testkit::check_snapshot(&path, &text, &format!("the `map` reply of {name}"));
}

#[test]
fn map_of_the_builtin_and_test_capabilities_is_stable() {
    let node = common::test_node("calc");
    check(
        "test_node_map",
        &serde_json::to_value(node.capabilities()).unwrap(),
    );
}
