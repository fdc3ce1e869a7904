//! Smoke tests of the embedded broker: `mqttcal broker` and `mqttcal lab`.

mod common;

use std::time::Duration;

use common::*;
use mqttcal_testkit::python_peer;
use serde_json::Value;

#[tokio::test]
async fn the_lab_runs_its_nodes_on_the_embedded_broker() {
    let db = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", db.path().join("lab.db").display());
    let (mut lab, url, _) = spawn_broker(&[
        "lab",
        "--database",
        &database,
        "--port",
        "0",
        "--seconds",
        "60",
        "--time-factor",
        "0.01",
        "--web-port",
        "0",
    ]);
    let c = client(&url).await;
    wait_ping(&c, "testnode").await;
    assert_eq!(
        map_senders(&url, 8),
        ["cald", "ctrld", "datad", "labd", "logd", "testnode", "tpld", "webd"]
    );

    // labd measures on the simulated instruments.
    let out = output(mqttcal(
        &url,
        &[
            "call",
            "labd",
            "measure",
            r#"{"src": "Z2", "repetitions": 2}"#,
            "--timeout",
            "20",
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let readings = reply["reply"]["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 2);
    assert!(
        (readings[0]["value"].as_f64().unwrap() - 9.9999959).abs() < 1e-5,
        "{reply}"
    );

    // datad stored them.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = output(mqttcal(
            &url,
            &["call", "datad", "query", r#"{"standard": "Z2"}"#],
        ));
        let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
        if reply["reply"].as_array().is_some_and(|r| r.len() == 2) {
            break;
        }
        assert!(std::time::Instant::now() < end, "{reply}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // logd saw every node arrive, and its chain verifies.
    let out = output(mqttcal(
        &url,
        &["call", "logd", "search", r#"{"kind": "joined"}"#],
    ));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut joined: Vec<&str> = reply["reply"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].as_str().unwrap())
        .collect();
    joined.sort();
    assert_eq!(
        joined,
        ["cald", "ctrld", "datad", "labd", "logd", "testnode", "tpld", "webd"],
        "{reply}"
    );
    let out = output(mqttcal(&url, &["call", "logd", "verify"]));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["reply"]["ok"], true, "{reply}");

    // ctrld: the lab at a glance, and calls forwarded as the demo policy lets a `mqttcal`
    // command (an operator) make them.
    let out = output(mqttcal(&url, &["call", "ctrld", "status"]));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let up: Vec<&str> = status["reply"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["status"] == "up")
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(up.contains(&"cald") && up.contains(&"labd"), "{status}");
    assert!(status["reply"]["jobs"].is_array(), "{status}");
    let out = output(mqttcal(
        &url,
        &[
            "call",
            "ctrld",
            "call",
            r#"{"node": "cald", "capability": "jobs"}"#,
        ],
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = output(mqttcal(
        &url,
        &[
            "call",
            "ctrld",
            "call",
            r#"{"node": "datad", "capability": "save_job", "params": {"id": "J-X"}}"#,
        ],
    ));
    let refused = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{refused}");
    assert!(
        refused.contains("forbidden")
            && refused.contains("role `operator` may not call `datad.save_job`"),
        "{refused}"
    );

    // The tour's calibration: check Z1 in, calibrate it against the demo reference Z2.
    let call = |args: &[&str]| -> Value {
        let out = output(mqttcal(&url, args));
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    call(&[
        "call",
        "cald",
        "checkin",
        r#"{"id": "Z1", "customer": "ACME", "manufacturer": "Fluke", "model": "732B", "serial": "123", "nominal_value": 10}"#,
    ]);
    let started = call(&[
        "call",
        "cald",
        "start",
        r#"{"item": "Z1", "job": "J-TOUR", "procedure": {"name": "DCV-10V-DIFF", "reference": "Z2", "groups": 3, "readings": 2, "NPLC": 1}}"#,
    ]);
    assert_eq!(started["reply"]["steps"], 12, "{started}");
    let end = std::time::Instant::now() + Duration::from_secs(30);
    let result = loop {
        let r = call(&["call", "datad", "results", r#"{"id": "J-TOUR"}"#]);
        if let Some(first) = r["reply"].as_array().and_then(|a| a.first()) {
            break first.clone();
        }
        assert!(std::time::Instant::now() < end, "no result for J-TOUR");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (v, u) = (
        result["value"].as_f64().unwrap(),
        result["expanded_uncertainty"].as_f64().unwrap(),
    );
    // The simulator's Z1 is 10 V + 12.3 µV.
    assert!((v - (10.0 + 12.3e-6)).abs() < 3.0 * u, "{result}");

    // `follow` shows a running job's progress and ends with its record and result. Z1 is
    // free once J-TOUR has ended in full (its result comes a moment before its end).
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while call(&["call", "cald", "jobs"])["reply"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        assert!(std::time::Instant::now() < end, "J-TOUR does not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    call(&[
        "call",
        "cald",
        "start",
        // Long enough (120 steps) that `follow` is there before it ends.
        r#"{"item": "Z1", "job": "J-TOUR2", "procedure": {"name": "DCV-10V-DIFF", "reference": "Z2", "groups": 30, "readings": 2, "NPLC": 1}}"#,
    ]);
    let out = output(mqttcal(&url, &["follow", "J-TOUR2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("120/120"), "{stderr}");
    let ended: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ended["job"]["status"], "done", "{ended}");
    assert!(
        ended["results"][0]["expanded_uncertainty"]
            .as_f64()
            .is_some(),
        "{ended}"
    );

    // logd signs checkpoints with a key the lab made beside the database, for its owner only.
    let key = db.path().join("lab.db.checkpoint-key");
    let meta = std::fs::metadata(&key).expect("the lab made a checkpoint key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);

    // tpld renders a job's certificate from datad's records; `--out` writes its files.
    let call_ok = |args: &[&str]| {
        let out = output(mqttcal(&url, args));
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    call_ok(&[
        "call",
        "datad",
        "register_equipment",
        r#"{"id": "Z9", "kind": "standard", "manufacturer": "Fluke", "serial": "999"}"#,
    ]);
    call_ok(&[
        "call",
        "datad",
        "save_job",
        r#"{"id": "J-CERT", "item": "Z9", "status": "done", "body": {"operator": "Ada", "customer": {"name": "ACME", "email": "q@acme.example", "address": {"street": "Via Roma", "post_code": "20121", "city": "Milano", "country": "IT"}}}}"#,
    ]);
    call_ok(&[
        "call",
        "datad",
        "save_result",
        r#"{"job": "J-CERT", "quantity": "Z9 output voltage", "value": 10.0000123, "unit": "V", "standard_uncertainty": 2e-7, "coverage_factor": 2.0, "expanded_uncertainty": 4e-7, "budget": [], "software_version": "mqttcal 0.1.0"}"#,
    ]);
    let files = tempfile::tempdir().unwrap();
    let out = call_ok(&[
        "call",
        "tpld",
        "certificate",
        r#"{"job": "J-CERT"}"#,
        "--out",
        files.path().to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains("\"content\""),
        "files in place of contents: {printed}"
    );
    let dcc = std::fs::read_to_string(files.path().join("DRAFT-J-CERT.dcc.xml")).unwrap();
    assert!(dcc.contains("<si:value>10.00001230</si:value>"), "{dcc}");
    let html = std::fs::read_to_string(files.path().join("DRAFT-J-CERT.html")).unwrap();
    assert!(html.contains("DRAFT"));
    #[cfg(feature = "pdf")]
    {
        let pdf = std::fs::read(files.path().join("DRAFT-J-CERT.pdf")).unwrap();
        let text = mqttcal_testkit::pdf_text(&pdf);
        assert!(
            text.contains("10.00001230 V") && text.contains("DRAFT-J-CERT"),
            "{text}"
        );
    }
    // The tour's calibration as the README ends it: its DCC is the one docs/ shows (but for
    // the digits and dates of this run), and it validates.
    let demo = tempfile::tempdir().unwrap();
    call_ok(&[
        "call",
        "tpld",
        "certificate",
        r#"{"job": "J-TOUR", "customer": {"name": "ACME", "email": "q@acme.example", "address": {"street": "Via Roma", "post_code": "20121", "city": "Milano", "country": "IT"}}, "persons": [{"name": "Ada", "role": "calibrated"}]}"#,
        "--out",
        demo.path().to_str().unwrap(),
    ]);
    let fresh = demo.path().join("DRAFT-J-TOUR.dcc.xml");
    validate_dcc(&fresh);
    demo_dcc_is_current(&std::fs::read_to_string(&fresh).unwrap());

    // The logbook as a printable page, with the chain's verification.
    call_ok(&[
        "call",
        "tpld",
        "logbook",
        "{}",
        "--out",
        files.path().to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(files.path().join("logbook.html")).unwrap();
    assert!(
        page.contains("tpld joined") && page.contains("The whole chain verifies"),
        "{page}"
    );

    // Ctrl-C: the nodes stop, logd last, so the logbook says who left.
    lab.signal("INT");
    assert_eq!(lab.wait_exit(Duration::from_secs(30)), Some(0));
    let db = rusqlite::Connection::open(db.path().join("lab.db")).unwrap();
    let mut left: Vec<String> = db
        .prepare("SELECT node FROM logbook WHERE kind = 'left'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["cald", "ctrld", "datad", "labd", "testnode", "tpld", "webd"]
    );
}

#[tokio::test]
async fn a_report_style_peer_on_the_v4_port_reaches_a_node_on_the_v5_port() {
    let (_broker, url, v4) = spawn_broker(&["broker", "--port", "0"]);
    let _node = Proc::spawn(mqttcal(&url, &["run", "base", "--name", "rustnode"]));
    let c = client(&url).await;
    wait_ping(&c, "rustnode").await;
    let port: u16 = v4.rsplit(':').next().unwrap().parse().unwrap();
    let out = python_peer(port, &["probe", "rustnode"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Validates the DCC at `file` against the shipped schema with xmllint.
fn validate_dcc(file: &std::path::Path) {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mqttcal-certificates/schemas/dcc-3.1.2/dcc.xsd");
    let out = std::process::Command::new(mqttcal_testkit::xmllint())
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo calibration's DCC kept in docs/ is what the lab writes today, but for what
/// changes from run to run (the measured digits, the conditions and the dates). With
/// `MQTTCAL_UPDATE_SNAPSHOTS=1` this run's DCC replaces it.
fn demo_dcc_is_current(fresh: &str) {
    let kept = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/certificates/demo-calibration-dcc.xml");
    if std::env::var_os("MQTTCAL_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&kept, fresh).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&kept).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; write it with MQTTCAL_UPDATE_SNAPSHOTS=1 cargo test -p mqttcal-cli --test embedded",
            kept.display()
        )
    });
    let (kept_masked, fresh_masked) = (masked(&text), masked(fresh));
    if let Some((i, (a, b))) = kept_masked
        .lines()
        .zip(fresh_masked.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "the demo calibration's DCC changed at line {}: `{a}` became `{b}`; review it, then write it with MQTTCAL_UPDATE_SNAPSHOTS=1 cargo test -p mqttcal-cli --test embedded",
            i + 1
        );
    }
    assert_eq!(
        kept_masked.lines().count(),
        fresh_masked.lines().count(),
        "the demo calibration's DCC changed in length; write it with MQTTCAL_UPDATE_SNAPSHOTS=1"
    );
}

/// `xml` with what varies from run to run replaced by `#`: the content of `si:value` and
/// `si:expandedUnc`, and dates.
fn masked(xml: &str) -> String {
    let mut out = xml.to_owned();
    for tag in ["si:value", "si:expandedUnc"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut from = 0;
        while let Some(start) = out[from..].find(&open).map(|i| from + i + open.len()) {
            let end = start + out[start..].find(&close).expect("a closed element");
            out.replace_range(start..end, "#");
            from = start + 1;
        }
    }
    let bytes: Vec<char> = out.chars().collect();
    let digit = |i: usize| bytes.get(i).is_some_and(char::is_ascii_digit);
    let mut dated = String::with_capacity(out.len());
    let mut i = 0;
    while i < bytes.len() {
        let is_date = (0..4).all(|k| digit(i + k))
            && bytes.get(i + 4) == Some(&'-')
            && (5..7).all(|k| digit(i + k))
            && bytes.get(i + 7) == Some(&'-')
            && (8..10).all(|k| digit(i + k));
        if is_date {
            dated.push('#');
            i += 10;
        } else {
            dated.push(bytes[i]);
            i += 1;
        }
    }
    dated
}
