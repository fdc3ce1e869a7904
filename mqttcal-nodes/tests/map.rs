//! The `map` reply of every reference node: the wire contract clients are written against,
//! published in `docs/schemas/map/` and snapshot-tested, so any change of a capability, its
//! parameters or its reply shows in review. `MQTTCAL_UPDATE_SNAPSHOTS=1` rewrites them.

use std::path::PathBuf;

use mqttcal_core::NodeBuilder;

fn check(name: &str, node: NodeBuilder) {
    let map = serde_json::to_value(node.build().capabilities()).unwrap();
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "docs",
        "schemas",
        "map",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    let text = serde_json::to_string_pretty(&map).unwrap() + "\n";
    mqttcal_testkit::check_snapshot(&path, &text, &format!("the `map` reply of {name}"));
}

#[tokio::test]
async fn the_map_of_every_reference_node_is_unchanged() {
    check("base", mqttcal_nodes::base::node("testnode"));
    // Instruments connect on first use: the map needs none.
    let labd: mqttcal_nodes::labd::LabdConfig = serde_json::from_value(serde_json::json!({
        "lab-id": "LAB",
        "dmm": {"driver": "hp3458", "resource": "TCPIP::192.0.2.7::1234::SOCKET"},
        "scanner-x": {"resource": "TCPIP::192.0.2.8::5025::SOCKET"},
        "channels": {"Z1": 1}
    }))
    .unwrap();
    check("labd", mqttcal_nodes::labd::node("labd", labd));
    let dir = tempfile::tempdir().unwrap();
    let store = mqttcal_store::open(&format!("sqlite:{}", dir.path().join("map.db").display()))
        .await
        .unwrap();
    let config = mqttcal_nodes::datad::DatadConfig::default();
    check(
        "datad",
        mqttcal_nodes::datad::node("datad", &config, store.clone()),
    );
    check("logd", mqttcal_nodes::logd::node("logd", store, None));
    check(
        "cald",
        mqttcal_nodes::cald::node("cald", mqttcal_nodes::cald::CaldConfig::default()),
    );
    check(
        "tpld",
        mqttcal_nodes::tpld::node("tpld", mqttcal_nodes::tpld::TpldConfig::default()).unwrap(),
    );
    check(
        "ctrld",
        mqttcal_nodes::ctrld::node("ctrld", mqttcal_nodes::ctrld::CtrldConfig::default()).unwrap(),
    );
}
