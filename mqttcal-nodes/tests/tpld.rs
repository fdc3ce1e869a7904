//! tpld on Mosquitto with datad on PostgreSQL: a job's certificate from a stored result,
//! its DCC valid against the shipped schema with the reported digits, its HTML escaping
//! the customer's name; clear errors for a job without result or customer; a laboratory's
//! template folder, and a broken template refused at start with its file and line.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use common::*;
use mqttcal_nodes::tpld::{self, TpldConfig};
use mqttcal_testkit::{self_signed_pair, xmllint, xmlsec1, BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

/// `xmllint` run on `xml` with `args`; its output.
fn lint(xml: &[u8], args: &[&str]) -> std::process::Output {
    let file = tempfile::Builder::new().suffix(".xml").tempfile().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    Command::new(xmllint())
        .args(args)
        .arg(file.path())
        .output()
        .unwrap()
}

fn schema() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mqttcal-certificates/schemas/dcc-3.1.2/dcc.xsd")
        .display()
        .to_string()
}

#[cfg(feature = "pdf")]
use mqttcal_testkit::pdf_text;

fn document(reply: &Value, kind: &str) -> Vec<u8> {
    let doc = reply["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {reply}"));
    base64::engine::general_purpose::STANDARD
        .decode(doc["content"].as_str().unwrap())
        .unwrap()
}

const HOSTILE: &str = "Rossi & <Figli> \"S.p.A.\" #$[";

#[tokio::test]
async fn a_jobs_certificate_renders_from_its_stored_result() {
    let broker = Mosquitto::start(BrokerKind::Stock);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("tpld"))
        .await
        .unwrap();
    let _datad = start_datad(&url, store).await;
    // Issued DCCs are signed with a key pair of the lab's.
    let keys = tempfile::tempdir().unwrap();
    let (key, cert) = self_signed_pair(keys.path(), "lab");
    let config = TpldConfig {
        sign: Some(tpld::SignConfig {
            key,
            certificate: cert.clone(),
            xmlsec1: xmlsec1(),
        }),
        ..TpldConfig::default()
    };
    let _tpld = tpld::node("tpld", config)
        .unwrap()
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let c = client(&url).await;
    wait_ping(&c, "tpld").await;
    let call = |to: &'static str, cap: &'static str, params: Value| {
        let ctx = c.context().clone();
        async move { ctx.request(to, cap, params).await }
    };
    call(
        "datad",
        "register_equipment",
        json!({
            "id": "Z1", "kind": "standard", "description": "DC voltage standard, 10 V",
            "manufacturer": "Fluke", "model": "732B", "serial": "1234567"
        }),
    )
    .await
    .unwrap();
    let customer = json!({
        "name": HOSTILE, "email": "q@example.com",
        "address": {"street": "Via Roma", "post_code": "20121", "city": "Milano", "country": "IT"}
    });
    call(
        "datad",
        "save_job",
        json!({
            "id": "J-1", "procedure": "PT-DCV-01", "item": "Z1", "status": "done",
            "body": {"customer": customer}
        }),
    )
    .await
    .unwrap();

    // No result yet: said so.
    let err = call("tpld", "certificate", json!({"job": "J-1"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no result"), "{err}");

    call("datad", "save_result", json!({
        "job": "J-1", "quantity": "Z1 output voltage", "standard": "Z1",
        "value": 10.000_012_344, "unit": "V", "standard_uncertainty": 4.6705e-7,
        "coverage_factor": 2.0, "expanded_uncertainty": 9.341e-7,
        "budget": [{"source": "reference", "u": 4.6e-7}], "software_version": "mqttcal 0.1.0",
        "recorded_by": "cald",
        "equipment": [{"role": "reference", "id": "Z2", "serial": "7654321", "calibration_due": 1.83e9}],
        "environment": {"temperature": {"min": 22.9, "max": 23.3, "mean": 23.1}, "violations": []}
    }))
    .await
    .unwrap();
    let reply = call("tpld", "certificate", json!({"job": "J-1"}))
        .await
        .unwrap();
    assert_eq!(reply["number"], "DRAFT-J-1");

    let xml = document(&reply, "dcc");
    let checked = lint(&xml, &["--noout", "--schema", &schema()]);
    assert!(
        checked.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&checked.stderr),
        String::from_utf8_lossy(&xml)
    );
    let read = |xpath: &str| {
        let out = lint(&xml, &["--xpath", &format!("string({xpath})")]);
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end_matches('\n')
            .to_owned()
    };
    // The reported digits: U to two significant digits, the value to the same place.
    assert_eq!(
        read("//*[local-name()='result']//*[local-name()='value']"),
        "10.00001234"
    );
    assert_eq!(read("//*[local-name()='uncertainty']"), "0.00000093");
    assert_eq!(read("//*[local-name()='coverageFactor']"), "2.00");
    assert_eq!(
        read("//*[local-name()='customer']/*[local-name()='name']/*[local-name()='content']"),
        HOSTILE
    );
    assert_eq!(
        read(
            "//*[local-name()='item']//*[local-name()='identification'][1]/*[local-name()='value']"
        ),
        "1234567"
    );

    let html = String::from_utf8(document(&reply, "html")).unwrap();
    assert!(
        html.contains("10.00001234 V") && html.contains("0.00000093 V"),
        "{html}"
    );
    assert!(
        html.contains("Rossi &amp; &lt;Figli&gt;"),
        "escaped: {html}"
    );
    assert!(html.contains("DRAFT"));
    #[cfg(feature = "pdf")]
    {
        let text = pdf_text(&document(&reply, "pdf"));
        for part in [
            "DRAFT-J-1",
            "10.00001234 V",
            "0.00000093 V",
            "DRAFT",
            HOSTILE,
        ] {
            assert!(text.contains(part), "`{part}` in the PDF: {text}");
        }
    }

    // A job without customer details, and one datad does not know.
    call(
        "datad",
        "save_job",
        json!({"id": "J-2", "item": "Z1", "status": "done"}),
    )
    .await
    .unwrap();
    call(
        "datad",
        "save_result",
        json!({
            "job": "J-2", "quantity": "Z1 output voltage", "value": 10.0, "unit": "V",
            "standard_uncertainty": 5e-7, "coverage_factor": 2.0, "expanded_uncertainty": 1e-6,
            "budget": [], "software_version": "mqttcal 0.1.0"
        }),
    )
    .await
    .unwrap();
    let err = call("tpld", "certificate", json!({"job": "J-2"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("customer"), "{err}");
    let err = call(
        "tpld",
        "certificate",
        json!({"job": "J-2", "customer": customer}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("persons"), "{err}");
    let with_customer = call(
        "tpld",
        "certificate",
        json!({"job": "J-2", "customer": customer, "persons": [{"name": "Ada", "role": "calibrated"}]}),
    )
    .await
    .unwrap();
    assert_eq!(with_customer["data"]["results"][0]["value"], "10.0000000");
    // What the draft was given is kept with the job, so the review can go on from it; the
    // calibrator is named once.
    let kept = call("datad", "job", json!({"id": "J-2"})).await.unwrap();
    assert_eq!(kept["body"]["customer"]["name"], HOSTILE, "{kept}");
    assert_eq!(kept["body"]["operator"], "Ada", "{kept}");
    call(
        "tpld",
        "certificate",
        json!({"job": "J-2", "persons": [{"name": "Bruno", "role": "calibrated"}]}),
    )
    .await
    .unwrap();
    let err = call("tpld", "review", json!({"job": "J-2", "by": "ada"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("calibrated"), "{err}");
    let err = call("tpld", "certificate", json!({"job": "J-404"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("J-404"), "{err}");

    // Review before issue: nobody issues a draft; the reviewer did not calibrate, the
    // authorising person neither calibrated nor reviewed; then a number and the documents.
    call(
        "datad",
        "save_job",
        json!({
            "id": "J-1", "procedure": "PT-DCV-01", "item": "Z1", "status": "done",
            "body": {"customer": customer, "operator": "Ada"}
        }),
    )
    .await
    .unwrap();
    let reason = |e: mqttcal_core::CallError| match e {
        mqttcal_core::CallError::Remote { error, .. } => {
            error.details.unwrap_or_default()["reason"].clone()
        }
        other => panic!("{other}"),
    };
    let err = call("tpld", "issue", json!({"job": "J-1"}))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "not_authorised");
    // One person, however the name is typed; nobody is nobody.
    for by in ["Ada", " ada ", "ADA"] {
        let err = call("tpld", "review", json!({"job": "J-1", "by": by}))
            .await
            .unwrap_err();
        assert_eq!(reason(err), "same_person", "{by:?}");
    }
    for by in ["", "  ", "Bru\u{7}no"] {
        let err = call("tpld", "review", json!({"job": "J-1", "by": by}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("by:"), "{by:?}: {err}");
    }
    let err = call("tpld", "authorise", json!({"job": "J-1", "by": "Carla"}))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "wrong_state", "authorised only once reviewed");
    let reviewed = call("tpld", "review", json!({"job": "J-1", "by": "Bruno"}))
        .await
        .unwrap();
    assert_eq!(reviewed["status"], "reviewed");
    let err = call("tpld", "authorise", json!({"job": "J-1", "by": "bruno"}))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "same_person");
    let err = call("tpld", "issue", json!({"job": "J-1"}))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "not_authorised", "reviewed is not enough");
    call("tpld", "authorise", json!({"job": "J-1", "by": "Carla"}))
        .await
        .unwrap();
    let issued = call("tpld", "issue", json!({"job": "J-1"})).await.unwrap();
    let number = issued["number"].as_str().unwrap().to_owned();
    let year = &issued["data"]["issued"].as_str().unwrap()[..4];
    assert_eq!(number, format!("CAL-{year}-0001"));
    let xml = document(&issued, "dcc");
    let checked = lint(&xml, &["--noout", "--schema", &schema()]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let html = String::from_utf8(document(&issued, "html")).unwrap();
    assert!(!html.contains("DRAFT") && html.contains(&number), "{html}");
    assert!(
        html.contains("Carla") && html.contains("(signs)"),
        "the authorising person signs"
    );
    #[cfg(feature = "pdf")]
    {
        let text = pdf_text(&document(&issued, "pdf"));
        assert!(!text.contains("DRAFT"), "{text}");
        for part in [number.as_str(), "10.00001234 V", "0.00000093 V", "Carla"] {
            assert!(text.contains(part), "`{part}` in the PDF: {text}");
        }
    }
    // The signed DCC verifies with xmlsec1; a changed digit does not.
    let signed = String::from_utf8(document(&issued, "dcc-signed")).unwrap();
    let verify = |xml: &str| {
        let file = tempfile::Builder::new().suffix(".xml").tempfile().unwrap();
        std::fs::write(file.path(), xml).unwrap();
        Command::new(xmlsec1())
            .arg("--verify")
            .arg("--trusted-pem")
            .arg(&cert)
            .arg(file.path())
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&signed), "the issued DCC's signature verifies");
    assert!(!verify(&signed.replacen("10.00001234", "10.00001235", 1)));
    // Stored through datad, with its documents.
    let stored = call("datad", "certificate", json!({"id": number}))
        .await
        .unwrap();
    assert_eq!(stored["authorised_by"], "Carla");
    assert_eq!(
        stored["documents"].as_array().unwrap().len(),
        3 + usize::from(cfg!(feature = "pdf")),
        "dcc, html, (pdf,) dcc-signed"
    );
    let err = call("tpld", "issue", json!({"job": "J-1"}))
        .await
        .unwrap_err();
    assert_eq!(reason(err), "wrong_state", "issued once");

    // An amendment: a new number citing the original and why; the original untouched.
    let err = call(
        "tpld",
        "amend",
        json!({"number": number, "reason": "address", "by": "Ada"}),
    )
    .await
    .unwrap_err();
    assert_eq!(reason(err), "same_person");
    let amended = call(
        "tpld",
        "amend",
        json!({"number": number, "reason": "the customer's address was wrong", "by": "Carla"}),
    )
    .await
    .unwrap();
    let new_number = amended["number"].as_str().unwrap();
    assert_eq!(new_number, format!("CAL-{year}-0002"));
    assert_eq!(amended["data"]["amends"]["replaces"], number.as_str());
    let xml = document(&amended, "dcc");
    let checked = lint(&xml, &["--noout", "--schema", &schema()]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let cited = lint(
        &xml,
        &[
            "--xpath",
            "string(//*[local-name()='previousReport']/*[local-name()='referralID'])",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&cited.stdout).trim(), number);
    let again = call("datad", "certificate", json!({"id": number}))
        .await
        .unwrap();
    assert_eq!(
        again["content_hash"], stored["content_hash"],
        "the original is untouched"
    );
    assert_eq!(again["documents"], stored["documents"]);
    let new_record = call("datad", "certificate", json!({"id": new_number}))
        .await
        .unwrap();
    assert_eq!(new_record["replaces"], number.as_str());
    // The original is replaced once; a second amendment of it is refused, naming the first.
    let err = call(
        "tpld",
        "amend",
        json!({"number": number, "reason": "another correction", "by": "Carla"}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains(new_number), "{err}");
    assert_eq!(reason(err), "already_replaced");

    // The month's calibrations: the certificate and its amendment, in issue order.
    let month = &issued["data"]["issued"].as_str().unwrap()[..7];
    let report = call(
        "tpld",
        "report",
        json!({"kind": "calibrations", "month": month}),
    )
    .await
    .unwrap();
    assert_eq!(report["name"], format!("calibrations-{month}"));
    assert_eq!(report["calibrations"], 2);
    // Without a month or a range: this month's, the month the certificates were issued in.
    let this = call("tpld", "report", json!({"kind": "calibrations"}))
        .await
        .unwrap();
    assert_eq!(this["name"], format!("calibrations-{month}"));
    assert_eq!(this["calibrations"], 2);
    let html = String::from_utf8(document(&report, "html")).unwrap();
    let (first, second) = (
        html.find(&format!("<tr><td>{number}")).unwrap(),
        html.find(&format!("<tr><td>{new_number}")).unwrap(),
    );
    assert!(first < second, "oldest first: {html}");
    for part in [
        format!("replaces {number}"),
        format!("replaced by {new_number}"),
        "of which 1 amendments".into(),
        "10.00001234 V ± 0.00000093 V".into(),
        "Rossi &amp; &lt;Figli&gt;".into(),
    ] {
        assert!(html.contains(&part), "`{part}` in {html}");
    }
    #[cfg(feature = "pdf")]
    {
        let text = pdf_text(&document(&report, "pdf"));
        let replaced = format!("replaced by {new_number}");
        for part in [
            number.as_str(),
            new_number,
            HOSTILE,
            "0.00000093 V",
            &replaced,
        ] {
            assert!(text.contains(part), "`{part}` in the PDF: {text}");
        }
    }
    let empty = call(
        "tpld",
        "report",
        json!({"kind": "calibrations", "month": "2001-01"}),
    )
    .await
    .unwrap();
    assert_eq!(empty["calibrations"], 0);
    for (params, field) in [
        (json!({"kind": "calibrations", "month": "2026-13"}), "month"),
        (json!({"kind": "calibrations", "month": "2026-+1"}), "month"),
        (
            json!({"kind": "calibrations", "since": 0, "until": 1e300}),
            "since",
        ),
        (json!({"kind": "calibrations", "until": 2e9}), "since"),
        (
            json!({"kind": "calibrations", "month": month, "id": "Z1"}),
            "id",
        ),
        (json!({"kind": "standard"}), "id"),
        (
            json!({"kind": "calibrations", "since": 2e9, "until": 1e9}),
            "since",
        ),
    ] {
        let err = call("tpld", "report", params.clone()).await.unwrap_err();
        assert!(err.to_string().contains(field), "{params}: {err}");
    }

    let templates = call("tpld", "templates", json!({})).await.unwrap();
    #[allow(unused_mut)] // without the `pdf` feature
    let mut expected = vec![
        json!({"name": "calibrations.html", "source": "built-in"}),
        json!({"name": "certificate.html", "source": "built-in"}),
        json!({"name": "logbook.html", "source": "built-in"}),
        json!({"name": "report.html", "source": "built-in"}),
        json!({"name": "standard.html", "source": "built-in"}),
    ];
    #[cfg(feature = "pdf")]
    {
        expected.insert(1, json!({"name": "calibrations.typ", "source": "built-in"}));
        expected.insert(3, json!({"name": "certificate.typ", "source": "built-in"}));
        expected.push(json!({"name": "standard.typ", "source": "built-in"}));
    }
    assert_eq!(templates, Value::Array(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standards_history_report_shows_its_drift_line() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("report"))
        .await
        .unwrap();
    let _datad = start_datad(&url, store).await;
    let _tpld = tpld::node("tpld", TpldConfig::default())
        .unwrap()
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let c = client(&url).await;
    wait_ping(&c, "tpld").await;
    let ctx = c.context().clone();
    let call = |to: &'static str, cap: &'static str, params: Value| {
        let ctx = ctx.clone();
        async move { ctx.request(to, cap, params).await }
    };
    const DAY: f64 = 86_400.0;
    let now = mqttcal_core::clock::Timestamp::now().as_secs_f64();
    call(
        "datad",
        "register_equipment",
        json!({
            "id": "Z7", "kind": "standard", "description": "DC voltage standard <10 V> & co",
            "manufacturer": "Fluke", "model": "732B", "serial": "77", "nominal_value": 10.0,
            "unit": "V", "calibration_due": now + 100.0 * DAY
        }),
    )
    .await
    .unwrap();
    // Five yearly calibrations on a line rising 1 µV a year (to the day: 365.25 days).
    for year in 0..5 {
        let back = (4 - year) as f64 * 365.25;
        call(
            "datad",
            "add_calibration",
            json!({"equipment": "Z7", "calibrated_at": now - 30.0 * DAY - back * DAY,
                   "value": 10.0 + 2e-6 + 1e-6 * year as f64, "unit": "V",
                   "uncertainty": 0.4e-6, "coverage_factor": 2.0,
                   "certificate": format!("NMI-{year}"), "laboratory": "INRiM"}),
        )
        .await
        .unwrap();
    }
    let reply = call("tpld", "report", json!({"kind": "standard", "id": "Z7"}))
        .await
        .unwrap();
    assert_eq!(reply["name"], "standard-Z7");
    assert_eq!(reply["calibrations"], 5);
    let drift = reply["drift_per_year"].as_f64().unwrap();
    assert!((drift - 1e-6).abs() < 1e-12, "{drift}");
    let html = String::from_utf8(document(&reply, "html")).unwrap();
    assert_eq!(
        html.matches(r##"r="2.5" fill="#036""##).count(),
        5,
        "one point per calibration"
    );
    assert_eq!(
        html.matches(r##"fill="#fff" stroke="#c00""##).count(),
        1,
        "the line's prediction at the due date"
    );
    for part in [
        "DC voltage standard &lt;10 V&gt; &amp; co",
        "NMI-4",
        "10.00000600 V",
        "deviation from 10 V, in µV",
        "per year",
        "Birge ratio",
    ] {
        assert!(html.contains(part), "`{part}` in {html}");
    }
    // Today the line stands at 10 V + 6 µV + 30 days' drift.
    let today = 10.0 + 6e-6 + 30.0 / 365.25 * 1e-6;
    let predicted = format!("{today:.8}");
    assert!(
        html.contains(&format!("predicts {predicted} V")),
        "{predicted} in {html}"
    );
    #[cfg(feature = "pdf")]
    {
        let text = pdf_text(&document(&reply, "pdf"));
        for part in [
            "Calibration history of Z7",
            "NMI-0",
            "10.0000060",
            "per year",
        ] {
            assert!(text.contains(part), "`{part}` in the PDF: {text}");
        }
    }

    // A history stays one quantity: another unit, or no uncertainty, is refused.
    for (change, field) in [
        (json!({"unit": "mV", "value": 10000.01}), "unit"),
        (json!({"uncertainty": 0.0}), "uncertainty"),
    ] {
        let mut c = json!({"equipment": "Z7", "calibrated_at": now - DAY, "value": 10.0,
                           "unit": "V", "uncertainty": 0.4e-6, "coverage_factor": 2.0});
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        let err = call("datad", "add_calibration", c).await.unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }

    // One calibration: no line, said so; an unknown standard: an error naming it.
    call(
        "datad",
        "register_equipment",
        json!({"id": "Z8", "kind": "standard", "unit": "V"}),
    )
    .await
    .unwrap();
    call(
        "datad",
        "add_calibration",
        json!({"equipment": "Z8", "calibrated_at": now - DAY, "value": 1.018, "unit": "V",
               "uncertainty": 1e-6, "coverage_factor": 2.0}),
    )
    .await
    .unwrap();
    let one = call("tpld", "report", json!({"kind": "standard", "id": "Z8"}))
        .await
        .unwrap();
    assert_eq!(one["drift_per_year"], Value::Null);
    let html = String::from_utf8(document(&one, "html")).unwrap();
    assert!(html.contains("needs two calibrations at least"), "{html}");
    let err = call("tpld", "report", json!({"kind": "standard", "id": "NOPE"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOPE"), "{err}");
    let err = call("tpld", "report", json!({"kind": "monthly", "id": "Z7"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("kind"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_issues_100_certificates_with_distinct_numbers_and_progress() {
    use mqttcal_core::transport::{Event, QoS, SessionSpec, Subscription, Transport};
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let url = broker.url();
    let pg = Postgres::start();
    let store = mqttcal_store::open(&pg.create_database("batch"))
        .await
        .unwrap();
    let _datad = start_datad(&url, store).await;
    let _tpld = tpld::node("tpld", TpldConfig::default())
        .unwrap()
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let c = client(&url).await;
    wait_ping(&c, "tpld").await;
    let ctx = c.context().clone();
    let call = |to: &'static str, cap: &'static str, params: Value| {
        let ctx = ctx.clone();
        async move { ctx.request(to, cap, params).await.unwrap() }
    };
    call(
        "datad",
        "register_equipment",
        json!({
            "id": "Z1", "kind": "standard", "manufacturer": "Fluke", "serial": "1234567"
        }),
    )
    .await;
    let customer = json!({
        "name": "ACME", "email": "q@acme.example",
        "address": {"street": "Via Roma", "post_code": "20121", "city": "Milano", "country": "IT"}
    });
    const N: usize = 100;
    let mut jobs = Vec::new();
    for i in 0..=N {
        let job = format!("J-{i:03}");
        call(
            "datad",
            "save_job",
            json!({
                "id": job, "item": "Z1", "status": "done",
                "body": {"customer": customer, "operator": "Ada"}
            }),
        )
        .await;
        call(
            "datad",
            "save_result",
            json!({
                "job": job, "quantity": "Z1 output voltage", "value": 10.0 + i as f64 * 1e-7,
                "unit": "V", "standard_uncertainty": 2e-7, "coverage_factor": 2.0,
                "expanded_uncertainty": 4e-7, "budget": [], "software_version": "mqttcal 0.1.0"
            }),
        )
        .await;
        // The last one is not authorised: reported, and the others go on.
        if i < N {
            call("tpld", "review", json!({"job": job, "by": "Bruno"})).await;
            call("tpld", "authorise", json!({"job": job, "by": "Carla"})).await;
        }
        jobs.push(job);
    }
    let mut progress = transport(&url)
        .connect(SessionSpec::new(
            "progress-watch",
            vec![Subscription::new("progress", QoS::AtMostOnce)],
        ))
        .await
        .unwrap();
    let reply = ctx
        .request_timeout(
            "tpld",
            "batch",
            json!({"jobs": jobs}),
            std::time::Duration::from_secs(120),
        )
        .await
        .unwrap();
    let items = reply.as_array().unwrap();
    assert_eq!(items.len(), N + 1);
    let numbers: std::collections::BTreeSet<&str> =
        items.iter().filter_map(|i| i["number"].as_str()).collect();
    assert_eq!(numbers.len(), N, "{N} certificates, no number twice");
    let failed: Vec<&Value> = items.iter().filter(|i| i.get("error").is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["job"], format!("J-{N:03}"));
    assert_eq!(failed[0]["code"], "refused");
    let mut seen = 0;
    while seen < N + 1 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(5), progress.events.recv())
            .await
            .unwrap_or_else(|_| panic!("only {seen} progress messages; the reply: {reply}"))
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            let m: Value = serde_json::from_slice(&payload).unwrap();
            if m.get("batch").is_some() {
                seen += 1;
                assert_eq!(m["i"], seen, "{m}");
                assert_eq!(m["n"], N + 1);
                assert!(
                    m.get("number").is_some() || m.get("problem").is_some(),
                    "{m}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_lab_template_folder_is_used_and_a_broken_one_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("certificate.html");
    std::fs::write(&own, "<p>{{ c.number }}</p>").unwrap();
    let config = TpldConfig {
        templates: Some(dir.path().to_owned()),
        ..TpldConfig::default()
    };
    assert!(tpld::node("tpld", config.clone()).is_ok());
    std::fs::write(&own, "<p>\n{{ c.number </p>\n{% endif %}").unwrap();
    let err = tpld::node("tpld", config).unwrap_err().to_string();
    assert!(err.contains("certificate.html, line"), "{err}");
}
