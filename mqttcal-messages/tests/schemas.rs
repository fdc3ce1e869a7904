//! The JSON Schema of every lab message, published in `docs/schemas/` for nodes written in
//! other languages, and snapshot-tested: a change of a message is a change of the wire
//! contract and must show in review. `MQTTCAL_UPDATE_SNAPSHOTS=1` rewrites them.

use std::path::PathBuf;

#[test]
fn every_lab_message_schema_is_published_and_unchanged() {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "docs", "schemas"]
        .iter()
        .collect();
    let all = mqttcal_messages::schemas();
    assert_eq!(all.len(), 7);
    for (name, schema) in all {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        mqttcal_testkit::check_snapshot(
            &dir.join(format!("{name}.json")),
            &text,
            &format!("the schema of `{name}`"),
        );
    }
}
