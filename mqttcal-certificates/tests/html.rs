//! The printable HTML certificate: the numbers as stored, markup characters rendered as
//! text (read back by libxml2's HTML parser), DRAFT on drafts, a laboratory's template
//! folder in place of the built-in one, and a broken template named with its line.

mod common;

use common::html_text;
use mqttcal_certificates::{example, Status, TemplateError, Templates};

#[test]
fn the_page_states_the_stored_numbers_and_marks_a_draft() {
    let data = example();
    let html = Templates::builtin().certificate_html(&data).unwrap();
    let r = &data.results[0];
    let row = html_text(&html, "//table[2]/tr[2]");
    for part in [
        &r.value,
        &r.expanded_uncertainty,
        &r.coverage_factor,
        &r.coverage_probability,
    ] {
        assert!(row.contains(part.as_str()), "{part} in {row}");
    }
    assert!(html_text(&html, "//p[1]").starts_with("DRAFT (draft)"));
    assert!(html_text(&html, "//title").starts_with("DRAFT "));

    let mut issued = data.clone();
    issued.number = "CAL-2026-0042".into();
    issued.status = Status::Issued;
    issued.issued = Some("2026-12-04".into());
    issued.persons[1].main_signer = true;
    let html = Templates::builtin().certificate_html(&issued).unwrap();
    assert!(!html.contains("DRAFT"), "an issued certificate is no draft");
    assert!(html.contains("issued 2026-12-04"));
}

#[test]
fn markup_characters_render_as_text() {
    let hostile = "<&\"#$[ </td><script>alert(1)</script> '";
    let mut data = example();
    data.customer.name = hostile.into();
    data.item.serial = hostile.into();
    let html = Templates::builtin().certificate_html(&data).unwrap();
    assert!(!html.contains("<script>"), "no markup gets through");
    let customer = html_text(&html, "//table[1]/tr[2]/td");
    assert!(customer.starts_with(hostile), "{customer}");
}

#[test]
fn a_lab_template_folder_overrides_the_built_in_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().join("certificate.html");
    std::fs::write(
        &own,
        "<p>Our own layout for {{ c.number }}: {{ c.customer.name }}</p>",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "Number {{ c.number }}").unwrap();
    let templates = Templates::with_dir(dir.path()).unwrap();
    assert_eq!(templates.source("certificate.html"), Some(own.as_path()));
    let mut expected = vec![
        "calibrations.html",
        "certificate.html",
        "logbook.html",
        "notes.txt",
        "report.html",
        "standard.html",
    ];
    if cfg!(feature = "pdf") {
        expected.insert(1, "calibrations.typ");
        expected.insert(3, "certificate.typ");
        expected.push("standard.typ");
    }
    assert_eq!(templates.names(), expected);
    let mut data = example();
    data.customer.name = "A & B".into();
    let html = templates.certificate_html(&data).unwrap();
    assert_eq!(
        html,
        "<p>Our own layout for DRAFT-JOB-2026-0042: A &amp; B</p>"
    );
    assert_eq!(
        templates.render("notes.txt", &data).unwrap(),
        "Number DRAFT-JOB-2026-0042"
    );
}

#[test]
fn a_broken_template_is_named_with_its_line_and_nothing_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("certificate.html");
    std::fs::write(
        &bad,
        "<h1>{{ c.number }}</h1>\n<p>\n{% if c.amends %}\n{{ c.number + }}\n{% endif %}</p>\n",
    )
    .unwrap();
    let err = Templates::with_dir(dir.path()).unwrap_err();
    match &err {
        TemplateError::Syntax { file, line, .. } => {
            assert_eq!(file, &bad);
            assert_eq!(*line, Some(4), "{err}");
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains("certificate.html, line 4"), "{text}");
    // A template naming a field the data does not have fails at rendering, not halfway.
    std::fs::write(&bad, "<p>{{ c.number }}</p>{{ c.no_such_field }}").unwrap();
    let templates = Templates::with_dir(dir.path()).unwrap();
    let err = templates.certificate_html(&example()).unwrap_err();
    assert!(matches!(err, TemplateError::Render { .. }), "{err}");
}

#[test]
fn a_lab_report_page_frames_every_built_in_report() {
    let context = serde_json::json!({
        "laboratory": {"name": "Lab <A&B>"},
        "from": "2026-11-01", "to": "2026-11-30",
        "entries": [], "verification": {"ok": true, "entries": 0, "checkpoints": 0, "unsigned": 0},
        "generated": "2026-12-01T00:00:00Z", "software": "mqttcal",
    });
    // The built-in frame: one page, the report's own heading and the footnote.
    let html = Templates::builtin()
        .render_with("logbook.html", &context)
        .unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<title>Logbook 2026-11-01 to 2026-11-30</title>"));
    assert!(html.contains("Logbook of Lab &lt;A&amp;B&gt;"), "{html}");
    assert!(html.contains("Generated 2026-12-01T00:00:00Z by mqttcal."));
    // A lab's own frame (its letterhead) replaces it under every report.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("report.html"),
        "<html><body><header>Our letterhead</header>{% block body %}{% endblock body %}</body></html>",
    )
    .unwrap();
    let html = Templates::with_dir(dir.path())
        .unwrap()
        .render_with("logbook.html", &context)
        .unwrap();
    assert!(
        html.starts_with("<html><body><header>Our letterhead</header>"),
        "{html}"
    );
    assert!(html.contains("Logbook of Lab &lt;A&amp;B&gt;"), "{html}");
    assert!(!html.contains("Generated"), "{html}");
}
