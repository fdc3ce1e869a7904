use super::*;
use proptest::prelude::*;

#[test]
fn numbers_in_every_form() {
    assert_eq!(parse_number("42").unwrap(), 42.0);
    assert_eq!(parse_number("-0.5").unwrap(), -0.5);
    assert_eq!(parse_number("+1.018123E+00").unwrap(), 1.018123);
    assert_eq!(parse_number(" 1.0E-9 ").unwrap(), 1e-9);
    assert!(matches!(parse_number("ON"), Err(ParseError::NotANumber(_))));
    assert!(matches!(parse_number(""), Err(ParseError::NotANumber(_))));
    assert!(matches!(
        parse_number("nan"),
        Err(ParseError::NotANumber(_))
    ));
    assert!(matches!(
        parse_number("inf"),
        Err(ParseError::NotANumber(_))
    ));
    assert!(matches!(
        parse_number("-9.9E37"),
        Err(ParseError::Overload(_))
    ));
    assert_eq!(parse_numbers("1,2.5,-3E1").unwrap(), vec![1.0, 2.5, -30.0]);
}

#[test]
fn strings_with_doubled_quotes() {
    assert_eq!(parse_string("\"No error\"").unwrap(), "No error");
    assert_eq!(parse_string("\"say \"\"hi\"\"\"").unwrap(), "say \"hi\"");
    assert_eq!(parse_string("'a''b'").unwrap(), "a'b");
    for bad in ["\"open", "\"a\"b\"", "bare"] {
        assert!(
            matches!(parse_string(bad), Err(ParseError::NotAString(s)) if s == bad),
            "{bad}"
        );
    }
}

#[test]
fn blocks_are_checked() {
    for bad in [&b"#3001"[..], b"#0abc", b"#a", b"15hello", b"#2x1abc"] {
        assert!(
            matches!(parse_block(bad), Err(ParseError::Block(_))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn error_entries_and_identity() {
    let e = parse_error_entry("-222,\"Data out of range\"")
        .unwrap()
        .unwrap();
    assert_eq!(e.to_string(), "instrument error -222: Data out of range");
    assert_eq!(parse_error_entry("0,\"NO ERROR\"").unwrap(), None);
    assert!(matches!(
        parse_error_entry("garbage"),
        Err(ParseError::ErrorEntry(s)) if s == "garbage"
    ));
    let id = Identity::parse("Keysight Technologies,34470A,MY123,A.03.02\n").unwrap();
    assert_eq!(id.model, "34470A");
    assert_eq!(id.to_string(), "Keysight Technologies,34470A,MY123,A.03.02");
    assert!(matches!(
        Identity::parse("HP3458A"),
        Err(ParseError::Idn(s)) if s == "HP3458A"
    ));
}

proptest! {
    #[test]
    fn blocks_round_trip(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let framed = format_block(&data);
        let (body, used) = parse_block(&framed).unwrap();
        prop_assert_eq!(body, &data[..]);
        prop_assert_eq!(used, framed.len());
    }

    #[test]
    fn numbers_round_trip(v in -1e30f64..1e30) {
        prop_assert_eq!(parse_number(&format_number(v)).unwrap(), v);
        prop_assert_eq!(parse_number(&format!("{v:+.15E}")).unwrap(), format!("{v:+.15E}").parse::<f64>().unwrap());
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,40}") {
        let _ = parse_number(&s);
        let _ = parse_string(&s);
        let _ = parse_error_entry(&s);
        let _ = parse_block(s.as_bytes());
        let _ = Identity::parse(&s);
    }
}
