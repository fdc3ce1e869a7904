//! Every lab message, with every field set, written as its producer writes it and read back
//! as its consumers read it: the same value, and nothing on the wire that its published
//! schema does not describe.

use mqttcal_messages::{
    Base64, BudgetEntry, CalibrationRecord, CertificateDocument, CertificateRecord, Environment,
    Equipment, EquipmentKind, EquipmentUsed, Evaluation, JobRecord, LabMessage, LogEntry, Mode,
    Polarity, Reading, References, ResultRecord, Sources,
};
use serde_json::{json, Value};

/// Writes `v`, reads it back, and checks each top-level field against `T`'s schema.
fn round_trip<T: LabMessage + PartialEq + std::fmt::Debug>(v: &T) -> Value {
    let json = serde_json::to_value(v).unwrap();
    let back: T = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(&back, v, "{} does not read back as written", T::NAME);
    let schema = T::schema();
    let properties = schema["properties"].as_object().unwrap();
    for key in json.as_object().unwrap().keys() {
        assert!(
            properties.contains_key(key),
            "{} writes `{key}`, which its schema does not describe",
            T::NAME
        );
    }
    json
}

#[test]
fn a_reading_with_every_field() {
    let r = Reading {
        unit: Some("V".into()),
        origin_uid: Some(vec!["INRIM-DCV".into(), "lab-pc-1".into(), "labd".into()]),
        nplc: Some(100.0),
        ndigits: Some(8),
        range: Some(0.1),
        mode: Some(Mode::Differential),
        pol: Some(Polarity::Negative),
        src: Some(Sources::Many(vec!["Z1".into(), "Z2".into()])),
        index: Some(3),
        acquired: Some(1_764_072_003.123_456),
        raw: Some("-1.23456789E-05".into()),
        environment: Some(Environment {
            temperature: 23.012,
            humidity: 45.3,
            pressure: 1013.25,
        }),
        job: Some("J-2026-001".into()),
        ..Reading::new(-1.234_567_89e-5)
    };
    let json = round_trip(&r);
    assert_eq!(json["DC-measurement"], json!(-1.234_567_89e-5));
    assert_eq!(json["pol"], "-");
    assert_eq!(json.as_object().unwrap().len(), Reading::FIELDS.len());
}

#[test]
fn a_log_entry_with_every_field() {
    let e = LogEntry {
        tags: vec!["datad".into(), "gap".into()],
        refs: References {
            standard: Some("Z1".into()),
            job: Some("J-1".into()),
            certificate: Some("C-1".into()),
        },
        ..LogEntry::new("gap", "12 readings from labd missing")
    };
    round_trip(&e);
}

#[test]
fn a_job_with_every_field() {
    let j = JobRecord {
        id: "J-2026-001".into(),
        procedure: Some("DCV-01".into()),
        item: Some("Z1".into()),
        customer: Some("ACME".into()),
        status: "running".into(),
        config_hash: Some("9f2c".into()),
        body: Some(json!({"operator": "M. Rossi", "points": [10, 1.018]})),
    };
    round_trip(&j);
}

#[test]
fn a_result_with_its_budget() {
    let mut reference = BudgetEntry::new("reference (drift prediction)", 2.0e-7);
    reference.value = Some(10.000_012_1);
    reference.unit = Some("V".into());
    reference.sensitivity = Some(1.0);
    reference.evaluation = Some(Evaluation::B);
    reference.distribution = Some("normal".into());
    let mut type_a = BudgetEntry::new("type A", 6.4e-8);
    type_a.evaluation = Some(Evaluation::A);
    type_a.dof = Some(9.0);
    type_a.extra.insert("allan_deviation".into(), json!(5.1e-8));
    let r = ResultRecord {
        job: "J-2026-001".into(),
        quantity: "Z1 output voltage".into(),
        standard: Some("Z1".into()),
        value: 10.000_013_4,
        unit: "V".into(),
        standard_uncertainty: 2.1e-7,
        coverage_factor: 2.0,
        expanded_uncertainty: 4.2e-7,
        effective_dof: Some(58.3),
        budget: vec![reference, type_a],
        environment_ok: Some(true),
        software_version: "mqttcal 0.1.0".into(),
        config_hash: Some("9f2c".into()),
        amends: Some(7),
        reason: Some("wrong thermal EMF correction".into()),
        recorded_by: Some("M. Rossi".into()),
        equipment: vec![EquipmentUsed {
            role: "reference".into(),
            id: "Z2".into(),
            serial: Some("7310001".into()),
            calibration_due: Some(1.8e9),
            identity: None,
        }],
        environment: Some(json!({"temperature": {"min": 22.9, "max": 23.1}})),
    };
    r.validate().unwrap();
    let json = round_trip(&r);
    assert_eq!(json["budget"][1]["allan_deviation"], json!(5.1e-8));
    assert_eq!(json["equipment"][0]["serial"], "7310001");
}

#[test]
fn a_certificate_with_its_documents() {
    let c = CertificateRecord {
        number: "C-2026-001-A1".into(),
        job: "J-2026-001".into(),
        issued_at: 1_764_100_000.0,
        authorised_by: "A. Person".into(),
        replaces: Some("C-2026-001".into()),
        data: json!({"customer": "ACME", "item": {"model": "732B"}}),
        documents: vec![CertificateDocument {
            kind: "pdf".into(),
            media_type: "application/pdf".into(),
            content: Base64(b"%PDF-1.7".to_vec()),
        }],
        content_hash: Some("ab".repeat(32)),
        replaced_by: None,
    };
    c.validate().unwrap();
    round_trip(&c);
}

#[test]
fn equipment_and_its_calibration() {
    let e = Equipment {
        id: "Z1".into(),
        kind: EquipmentKind::Standard,
        description: Some("Zener 10 V standard".into()),
        manufacturer: Some("Fluke".into()),
        model: Some("732B".into()),
        serial: Some("1234567".into()),
        owner: Some("lab".into()),
        nominal_value: Some(10.0),
        unit: Some("V".into()),
        location: Some("bench 1".into()),
        calibration_due: Some(1.9e9),
        checked_in: Some(1.7e9),
        checked_out: Some(1.75e9),
    };
    e.validate().unwrap();
    round_trip(&e);
    let c = CalibrationRecord {
        equipment: "Z1".into(),
        calibrated_at: 1.72e9,
        value: 10.000_013_1,
        unit: "V".into(),
        uncertainty: 4.0e-7,
        coverage_factor: 2.0,
        certificate: Some("NMI-1".into()),
        laboratory: Some("NMI".into()),
    };
    c.validate().unwrap();
    round_trip(&c);
}
