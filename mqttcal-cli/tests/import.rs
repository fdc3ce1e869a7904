//! `mqttcal import`: a register and a history from CSV, through datad into a PostgreSQL of
//! the test's own; bad rows reported with their line, the rest stored; a second import
//! stores nothing twice.

mod common;

use std::process::Stdio;

use common::*;
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::json;

const REGISTER: &str = "id,kind,manufacturer,model,serial,nominal_value,unit,calibration_due\n\
Z1,standard,Fluke,732B,1234567,10,V,2026-06-30\n\
DMM1,instrument,Keysight,3458A,2823A12345,,,2026-01-15\n\
Z2,standard,Fluke,732B,7654321,ten,V,2026-06-30\n";

const HISTORY: &str =
    "equipment;calibrated_at;value;unit;uncertainty;coverage_factor;certificate\n\
Z1;2021-03-01;10,0000101;V;0,00000020;2;C-21-1\n\
Z1;2022-03-07;10,0000106;V;0,00000020;2;C-22-4\n\
Z1;2023-03-01;10,0000112;V;-0,00000020;2;C-23-9\n\
Z9;2023-03-01;10,0000112;V;0,00000020;2;C-23-10\n\
Z1;2024-03-04;10,0000118;V;0,00000020;2;C-24-2\n";

fn import(url: &str, what: &str, file: &std::path::Path) -> (Option<i32>, String, String) {
    let out = output(mqttcal(url, &["import", what, file.to_str().unwrap()]));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_register_and_a_history_come_in_with_bad_rows_reported() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let pg = Postgres::start();
    let database = pg.create_database("import");
    let url = broker.url();
    let mut cmd = mqttcal(&url, &["run", "datad"]);
    cmd.env("MQTTCAL_DATABASE_URL", &database)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _datad = Proc(cmd.spawn().unwrap());
    let c = client(&url).await;
    wait_ping(&c, "datad").await;
    let dir = tempfile::tempdir().unwrap();
    let register = dir.path().join("register.csv");
    let history = dir.path().join("history.csv");
    std::fs::write(&register, REGISTER).unwrap();
    std::fs::write(&history, HISTORY).unwrap();

    // A dry run stores nothing.
    let out = output(mqttcal(
        &url,
        &[
            "import",
            "equipment",
            register.to_str().unwrap(),
            "--dry-run",
        ],
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 row(s) ready"));
    let none = c
        .context()
        .request("datad", "equipment", json!({"id": "Z1"}))
        .await;
    assert!(none.is_err(), "a dry run stored {none:?}");

    let (code, stdout, _) = import(&url, "equipment", &register);
    assert_eq!(
        code,
        Some(1),
        "a refused row makes the exit code 1: {stdout}"
    );
    assert!(stdout.contains("register.csv:4: refused"), "{stdout}");
    assert!(stdout.contains("2 row(s) stored"), "{stdout}");
    let z1 = c
        .context()
        .request("datad", "equipment", json!({"id": "Z1"}))
        .await
        .unwrap();
    assert_eq!(z1["serial"], "1234567");
    assert_eq!(z1["calibration_due"], 1_782_777_600.0);

    let (code, stdout, stderr) = import(&url, "history", &history);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("history.csv:4: refused") && stdout.contains("uncertainty"),
        "{stdout}"
    );
    assert!(
        stdout.contains("history.csv:5: refused") && stdout.contains("Z9"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 row(s) stored, 0 already present, 2 refused"),
        "{stdout}"
    );
    assert!(stderr.contains("import: 4/4"), "progress: {stderr}");
    let stored = c
        .context()
        .request("datad", "history", json!({"id": "Z1"}))
        .await
        .unwrap();
    let values: Vec<f64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [10.000_010_1, 10.000_010_6, 10.000_011_8]);

    // Again: nothing stored twice.
    let (_, stdout, _) = import(&url, "history", &history);
    assert!(
        stdout.contains("0 row(s) stored, 3 already present"),
        "{stdout}"
    );
    let again = c
        .context()
        .request("datad", "history", json!({"id": "Z1"}))
        .await
        .unwrap();
    assert_eq!(again.as_array().unwrap().len(), 3);

    // A register of fewer columns updates what it names and erases nothing; the same
    // file again changes nothing.
    let partial = dir.path().join("partial.csv");
    std::fs::write(
        &partial,
        "id,kind,calibration_due\nZ1,standard,2027-01-01\n",
    )
    .unwrap();
    let (code, stdout, _) = import(&url, "equipment", &partial);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("1 row(s) stored"), "{stdout}");
    let z1 = c
        .context()
        .request("datad", "equipment", json!({"id": "Z1"}))
        .await
        .unwrap();
    assert_eq!(z1["serial"], "1234567", "kept: {z1}");
    assert_eq!(z1["calibration_due"], 1_798_761_600.0);
    let (_, stdout, _) = import(&url, "equipment", &partial);
    assert!(
        stdout.contains("0 row(s) stored, 1 already present"),
        "{stdout}"
    );

    // No datad: one clear failure within seconds, not one timeout per row.
    let t0 = std::time::Instant::now();
    let out = output(mqttcal(
        &url,
        &[
            "import",
            "equipment",
            register.to_str().unwrap(),
            "--node",
            "nodatad",
        ],
    ));
    assert_eq!(out.status.code(), Some(3));
    assert!(t0.elapsed() < std::time::Duration::from_secs(8));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is datad running"));

    // A file with a column nobody knows is refused whole, with the list of columns.
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, "id,kind,colour\nZ5,standard,red\n").unwrap();
    let (code, _, stderr) = import(&url, "equipment", &odd);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("unknown column `colour`"), "{stderr}");
}
