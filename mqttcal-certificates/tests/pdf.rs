//! The PDF certificate (feature `pdf`): its text read back by pdftotext states the stored
//! digits, markup characters render as text, a draft says so on every page, the same data
//! gives the same bytes, and a laboratory's Typst template replaces the built-in one or
//! is refused with its file and line.

use mqttcal_certificates::{example, CertificateData, Status, TemplateError, Templates};
use mqttcal_testkit::{pdf_pages, pdf_text};

fn issued() -> CertificateData {
    let mut data = example();
    data.number = "CAL-2026-0042".into();
    data.status = Status::Issued;
    data.issued = Some("2026-12-04".into());
    data.persons[1].main_signer = true;
    data
}

/// `text` with its runs of white space made single spaces (pdftotext lays out columns).
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_pdf_states_the_stored_number_value_and_uncertainty() {
    let data = issued();
    let pdf = Templates::builtin().certificate_pdf(&data).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let pages = pdf_pages(&pdf);
    assert_eq!(pages.len(), 1, "{pages:?}");
    let text = squeeze(&pages[0]);
    let r = &data.results[0];
    for part in [
        "CAL-2026-0042",
        "issued 2026-12-04",
        &format!("{} V", r.value),
        &format!("{} V", r.expanded_uncertainty),
        &r.coverage_factor,
        &r.coverage_probability,
        "23.1 °C ± 0.3 °C",
        &data.customer.name,
        "Page 1 of 1",
    ] {
        assert!(text.contains(part), "`{part}` in {text}");
    }
    assert!(!text.contains("DRAFT"), "an issued certificate is no draft");
}

#[test]
fn markup_characters_in_the_data_render_as_text() {
    let hostile = "<&\"#$[ #panic(\"x\") *bold* _it_ $x^2$ @ref // no comment";
    let mut data = issued();
    data.customer.name = hostile.into();
    data.item.serial = "#read(\"/etc/passwd\")".into();
    let pdf = Templates::builtin().certificate_pdf(&data).unwrap();
    let text = pdf_text(&pdf);
    assert!(text.contains(hostile), "{text}");
    assert!(text.contains("serial #read(\"/etc/passwd\")"), "{text}");
}

#[test]
fn a_draft_says_draft_on_every_page() {
    let mut data = example();
    let line = data.results[0].clone();
    data.results = (0..120)
        .map(|i| mqttcal_certificates::ResultLine {
            name: format!("Point {i}"),
            ..line.clone()
        })
        .collect();
    let pdf = Templates::builtin().certificate_pdf(&data).unwrap();
    let pages = pdf_pages(&pdf);
    assert!(
        pages.len() >= 3,
        "120 result lines fill pages: {}",
        pages.len()
    );
    let count = pages.len();
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains("DRAFT"), "page {} of {count}: {page}", i + 1);
        let footer = format!("Page {} of {count}", i + 1);
        assert!(squeeze(page).contains(&footer), "{footer} in {page}");
        assert!(page.contains(&data.number), "the number on page {}", i + 1);
    }
}

#[test]
fn the_same_data_gives_the_same_bytes() {
    let templates = Templates::builtin();
    let data = issued();
    let a = templates.certificate_pdf(&data).unwrap();
    let b = templates.certificate_pdf(&data).unwrap();
    assert!(a == b, "two renderings of the same data differ");
    let mut changed = data.clone();
    changed.results[0].value = "10.00001235".into();
    let c = templates.certificate_pdf(&changed).unwrap();
    assert!(a != c, "a changed digit must change the document");
}

#[test]
fn bad_data_is_refused_before_typesetting() {
    let mut data = issued();
    data.results[0].expanded_uncertainty = "about 1 µV".into();
    match Templates::builtin().certificate_pdf(&data) {
        Err(TemplateError::Data(e)) => assert_eq!(e.field, "results[0].expanded_uncertainty"),
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[test]
fn a_laboratory_template_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("certificate.typ"),
        "#let data = json(\"/data.json\")\n#import \"parts.typ\": banner\n#banner\nOwn layout of #data.c.number: #data.c.results.at(0).value\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("parts.typ"),
        "#let banner = [Laboratory banner]\n",
    )
    .unwrap();
    let templates = Templates::with_dir(dir.path()).unwrap();
    assert_eq!(
        templates.source("certificate.typ"),
        Some(dir.path().join("certificate.typ").as_path())
    );
    let pdf = templates.certificate_pdf(&issued()).unwrap();
    let text = pdf_text(&pdf);
    assert!(text.contains("Laboratory banner"), "{text}");
    assert!(
        text.contains("Own layout of CAL-2026-0042: 10.00001234"),
        "{text}"
    );
}

#[test]
fn a_broken_template_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("certificate.typ");
    std::fs::write(
        &file,
        "// A lab's own\n#let data = json(\"/data.json\")\n#let x = (1, 2\nrest\n",
    )
    .unwrap();
    match Templates::with_dir(dir.path()) {
        Err(TemplateError::Syntax { file: f, line, .. }) => {
            assert_eq!(f, file);
            assert!(matches!(line, Some(3..=5)), "line {line:?}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }

    // One that parses but fails while typesetting names its line too, and gives no PDF.
    std::fs::write(
        &file,
        "#let data = json(\"/data.json\")\n\n#data.c.no_such_field\n",
    )
    .unwrap();
    let templates = Templates::with_dir(dir.path()).unwrap();
    let err = templates
        .certificate_pdf(&issued())
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate.typ, line 3"), "{err}");
    assert!(err.contains("no_such_field"), "{err}");

    // A template sees its data and its set, nothing of the machine.
    std::fs::write(&file, "#read(\"/etc/hostname\")\n").unwrap();
    let templates = Templates::with_dir(dir.path()).unwrap();
    let err = templates
        .certificate_pdf(&issued())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn what_the_pdf_cannot_print_or_a_flood_is_refused_with_its_field() {
    let templates = Templates::builtin();
    let refused = |change: &dyn Fn(&mut CertificateData)| {
        let mut data = issued();
        change(&mut data);
        match templates.certificate_pdf(&data) {
            Err(TemplateError::Data(e)) => e,
            other => panic!("expected a data error, got {:?}", other.map(|b| b.len())),
        }
    };
    let e = refused(&|d| d.customer.name = "株式会社 Example".into());
    assert_eq!(e.field, "customer.name", "{e}");
    assert!(e.problem.contains("U+682A"), "{e}");
    let e = refused(&|d| d.item.serial = "\u{202e}1234".into());
    assert_eq!(e.field, "item.serial", "{e}");
    let e = refused(&|d| d.customer.name = "A\u{1b}[2J".into());
    assert_eq!(e.field, "customer.name", "{e}");
    let e = refused(&|d| d.customer.name = "x".repeat(20_000));
    assert!(e.problem.contains("at most 4000"), "{e}");
    let e = refused(&|d| {
        let p = d.persons[0].clone();
        d.persons = vec![p; 5000];
    });
    assert_eq!(e.field, "persons", "{e}");
    // Greek, Cyrillic and accented Latin print.
    let mut data = issued();
    data.customer.name = "Ωμέγα Лаборатория Müller ÆØÅ".into();
    let pdf = templates.certificate_pdf(&data).unwrap();
    let text = pdf_text(&pdf);
    assert!(text.contains("Ωμέγα Лаборатория Müller ÆØÅ"), "{text}");
}
