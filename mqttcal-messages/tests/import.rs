//! Importing a lab's equipment register and calibration histories: every good row in, every
//! bad row reported with its line and the reason.

use mqttcal_messages::import::*;
use mqttcal_messages::EquipmentKind;

#[test]
fn a_register_with_one_bad_row_imports_the_rest() {
    let csv = "\u{feff}id,kind,manufacturer,model,serial,description,nominal_value,unit,calibration_due\n\
               Z1,standard,Fluke,732B,1234567,\"Zener, 10 V output\",10,V,2026-06-30\n\
               DMM1,instrument,Keysight,3458A,2823A12345,,,,2026-01-15\n\
               \n\
               Z2,gadget,Fluke,732B,7654321,,10,V,2026-06-30\n\
               Z3,standard,Fluke,734A,,,not-a-number,V,\n\
               Z1,standard,Fluke,732B,1234567,again,10,V,2026-06-30\n\
               Z4,standard,Fluke,732B,99\n";
    let import = equipment_from_csv(csv).unwrap();
    let ids: Vec<&str> = import.accepted.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, ["Z1", "DMM1"]);
    assert_eq!(import.accepted[0].0, 2, "lines count from the header");
    let z1 = &import.accepted[0].1;
    assert_eq!(z1.kind, EquipmentKind::Standard);
    assert_eq!(z1.description.as_deref(), Some("Zener, 10 V output"));
    assert_eq!(z1.nominal_value, Some(10.0));
    assert_eq!(z1.calibration_due, Some(1_782_777_600.0));
    assert_eq!(
        import.accepted[1].1.nominal_value, None,
        "an empty cell is absent"
    );
    let refused: Vec<(usize, &str)> = import
        .refused
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(refused[0].0, 5, "{refused:?}");
    assert!(refused[0].1.contains("gadget"), "{refused:?}");
    assert_eq!(refused[1].0, 6);
    assert!(refused[1].1.contains("nominal_value"), "{refused:?}");
    assert_eq!(refused[2].0, 7);
    assert!(refused[2].1.contains("earlier"), "{refused:?}");
    assert_eq!(refused[3].0, 8);
    assert!(refused[3].1.contains("cells"), "{refused:?}");
}

#[test]
fn semicolons_with_decimal_commas_and_iso_dates() {
    let csv = "equipment;calibrated_at;value;unit;uncertainty;coverage_factor;laboratory\n\
               Z1;2021-03-01;10,0000101;V;0,00000020;2;INRIM\n\
               Z1;2022-03-07T09:00:00+01:00;10,0000106;V;0,00000020;2;INRIM\n\
               Z1;2023-03-01;10,0000112;V;0,00000020;0;INRIM\n";
    let import = history_from_csv(csv).unwrap();
    assert_eq!(import.accepted.len(), 2);
    let second = &import.accepted[1].1;
    assert_eq!(second.value, 10.000_010_6);
    assert_eq!(second.uncertainty, 0.000_000_2);
    assert_eq!(second.calibrated_at, 1_646_640_000.0);
    assert_eq!(import.refused.len(), 1);
    assert_eq!(import.refused[0].line, 4);
    assert!(import.refused[0].reason.contains("coverage_factor"));
}

#[test]
fn a_file_with_wrong_columns_is_refused_whole() {
    let unknown = "id,kind,colour\nZ1,standard,red\n";
    let err = equipment_from_csv(unknown).unwrap_err();
    assert!(
        matches!(&err, ImportError::UnknownColumn { column, known } if column == "colour" && known.contains("serial")),
        "{err}"
    );
    let missing = "equipment,value,unit,uncertainty,coverage_factor\nZ1,10,V,1e-7,2\n";
    assert_eq!(
        history_from_csv(missing).unwrap_err(),
        ImportError::MissingColumn("calibrated_at".into())
    );
    let twice = "id,kind,id\nZ1,standard,Z1\n";
    assert!(matches!(
        equipment_from_csv(twice),
        Err(ImportError::DuplicateColumn(_))
    ));
    assert!(equipment_from_json("{\"id\": \"Z1\"}").is_err());
}

#[test]
fn json_rows_are_checked_one_by_one() {
    let json = r#"[
        {"equipment": "Z1", "calibrated_at": 1.6e9, "value": 10.0000101, "unit": "V", "uncertainty": 2e-7, "coverage_factor": 2},
        {"equipment": "Z1", "calibrated_at": 1.63e9, "value": 10.0000106, "unit": "V", "uncertainty": -2e-7, "coverage_factor": 2},
        {"equipment": "Z1", "calibrated_at": 1.66e9, "value": 10.0000112, "unit": "V", "uncertainty": 2e-7, "coverage_factor": 2, "colour": "red"},
        {"equipment": "Z1", "calibrated_at": 1.69e9, "value": 10.0000118, "unit": "V", "uncertainty": 2e-7, "coverage_factor": 2}
    ]"#;
    let import = history_from_json(json).unwrap();
    let lines: Vec<usize> = import.accepted.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [1, 4]);
    assert_eq!(import.refused.len(), 2);
    assert!(import.refused[0].reason.contains("uncertainty"));
    assert!(import.refused[1].reason.contains("colour"));
}

#[test]
fn an_unbalanced_quote_is_refused_not_swallowed() {
    let csv = "equipment,calibrated_at,value,unit,uncertainty,coverage_factor,certificate\n\
               Z2,2020-02-01,1.0002,V,0.000001,2,\"B-2\n\
               Z2,2020-03-01,1.0003,V,0.000001,2,B-3\n\
               Z2,2020-04-01,1.0004,V,0.000001,2,B-4\n";
    let import = history_from_csv(csv).unwrap();
    assert!(import.accepted.is_empty());
    assert_eq!(import.refused.len(), 1);
    assert_eq!(import.refused[0].line, 2);
    assert!(import.refused[0].reason.contains("unbalanced quote"));
}

#[test]
fn old_mac_line_endings_and_odd_headers() {
    let import =
        equipment_from_csv("id;kind;nominal_value\rR1;standard;1,5\rR2;bogus;1\r").unwrap();
    assert_eq!(import.accepted.len(), 1);
    assert_eq!(import.accepted[0].1.nominal_value, Some(1.5));
    assert_eq!(import.refused[0].line, 3);
    assert!(
        import.refused[0].reason.contains("`kind`"),
        "{:?}",
        import.refused
    );
    assert!(matches!(
        equipment_from_csv("  \n\n"),
        Err(ImportError::Unreadable(_))
    ));
    let err = equipment_from_csv("id,kind,\nZ1,standard,\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("separator too many"), "{err}");
}
