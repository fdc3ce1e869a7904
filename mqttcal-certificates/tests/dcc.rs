//! The DCC against the shipped DCC 3.1.2 schema, with `xmllint` (libxml2): the example, a
//! certificate full of markup characters, an amendment and an issued one validate, and the
//! values read back by an XML parser are the reported strings exactly.

mod common;

use std::path::Path;

use common::{read_back, validate};
use mqttcal_certificates::{dcc, example, Amendment, CertificateData, Status};

fn valid(data: &CertificateData) -> tempfile::NamedTempFile {
    let xml = dcc(data).unwrap();
    validate(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

/// `//dcc:a/dcc:b` without namespace prefixes, for xmllint's XPath.
fn path(steps: &[&str]) -> String {
    steps
        .iter()
        .map(|s| format!("/*[local-name()='{s}']"))
        .collect::<Vec<_>>()
        .join("/")
        .replacen('/', "//", 1)
}

#[test]
fn the_example_validates_and_its_numbers_read_back_exactly() {
    let data = example();
    let file = valid(&data);
    let result = path(&["result", "data", "quantity", "real"]);
    let r = &data.results[0];
    assert_eq!(
        read_back(file.path(), &format!("{result}/*[local-name()='value']")),
        r.value
    );
    assert_eq!(
        read_back(file.path(), &format!("{result}/*[local-name()='unit']")),
        "\\volt"
    );
    let unc = format!("{result}/*[local-name()='expandedUnc']");
    assert_eq!(
        read_back(file.path(), &format!("{unc}/*[local-name()='uncertainty']")),
        r.expanded_uncertainty
    );
    assert_eq!(
        read_back(
            file.path(),
            &format!("{unc}/*[local-name()='coverageFactor']")
        ),
        r.coverage_factor
    );
    assert_eq!(
        read_back(
            file.path(),
            &format!("{unc}/*[local-name()='coverageProbability']")
        ),
        r.coverage_probability
    );
    assert_eq!(
        read_back(file.path(), &path(&["coreData", "uniqueIdentifier"])),
        data.number
    );
    let statements = read_back(file.path(), &path(&["statements"]));
    assert!(statements.contains("DRAFT (draft)"), "{statements}");
}

#[test]
fn markup_characters_in_every_text_render_as_text() {
    let hostile = "<&\"#$[ ]]> '\\ <!-- x --> &amp;";
    let mut data = example();
    data.customer.name = hostile.into();
    data.customer.email = hostile.into();
    data.customer.address.street = hostile.into();
    data.item.name = hostile.into();
    data.item.serial = hostile.into();
    data.persons[0].name = hostile.into();
    data.method.norms.push(hostile.into());
    data.traceability = hostile.into();
    data.number = hostile.into();
    let file = valid(&data);
    assert_eq!(
        read_back(file.path(), &path(&["customer", "name", "content"])),
        hostile
    );
    assert_eq!(
        read_back(file.path(), &path(&["coreData", "uniqueIdentifier"])),
        hostile
    );
    assert_eq!(
        read_back(file.path(), &path(&["item", "name", "content"])),
        hostile
    );
}

#[test]
fn an_amendment_cites_the_certificate_it_replaces() {
    let mut data = example();
    data.number = "CAL-2026-0043".into();
    data.status = Status::Issued;
    data.issued = Some("2026-12-04".into());
    data.persons[1].main_signer = true;
    data.amends = Some(Amendment {
        replaces: "CAL-2026-0042".into(),
        reason: "the customer's address was wrong".into(),
        content_hash: "ab".repeat(32),
    });
    let file = valid(&data);
    assert_eq!(
        read_back(file.path(), &path(&["previousReport", "referralID"])),
        "CAL-2026-0042"
    );
    let statements = read_back(file.path(), &path(&["statements"]));
    assert!(
        statements.contains("replaces certificate CAL-2026-0042"),
        "{statements}"
    );
    assert!(
        !statements.contains("DRAFT"),
        "an issued certificate is no draft"
    );
}

#[test]
fn the_validation_catches_a_broken_document() {
    // The check above can fail: a DCC without its unit is refused by the schema.
    let xml = dcc(&example()).unwrap();
    let broken = xml.replacen("<si:unit>\\volt</si:unit>", "", 1);
    assert_ne!(broken, xml);
    let err = validate(&broken).unwrap_err();
    assert!(err.contains("unit"), "{err}");
}

#[test]
fn bad_data_is_refused_naming_the_field() {
    type Spoil = fn(&mut CertificateData);
    let cases: [(&str, Spoil); 6] = [
        ("results[0].value", |d| d.results[0].value = "1,5".into()),
        ("results[0].unit", |d| d.results[0].unit = "furlong".into()),
        ("results[0].coverage_factor", |d| {
            d.results[0].coverage_factor = "0.5".into()
        }),
        ("end", |d| d.end = "2026-11-01".into()),
        ("issued", |d| d.status = Status::Issued),
        ("country", |d| d.country = "Italy".into()),
    ];
    for (field, spoil) in cases {
        let mut data = example();
        spoil(&mut data);
        let err = dcc(&data).unwrap_err();
        assert_eq!(err.field, field, "{err}");
    }
}

#[test]
fn the_documented_example_is_current() {
    // Regenerate with `cargo run -p mqttcal-examples --bin certificate > docs/certificates/example-dcc.xml`
    // (or this test with MQTTCAL_UPDATE_SNAPSHOTS=1).
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/certificates/example-dcc.xml");
    mqttcal_testkit::check_snapshot(&doc, &dcc(&example()).unwrap(), "the example DCC");
}

#[test]
fn the_shipped_schemas_are_the_published_ones() {
    use sha2::{Digest, Sha256};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/dcc-3.1.2");
    for (file, sha256) in [
        (
            "dcc.xsd",
            "58986c28c8e2d6932a1c5b4aa51ad7c96da5ef25e47f4089f2bbd7aba30f54cc",
        ),
        (
            "SI_Format.xsd",
            "42e158ac16d0125b8cff32bedd5cf3e434955b729a00c9867f0510faa7905f2e",
        ),
    ] {
        let shipped = std::fs::read(dir.join(file)).unwrap();
        let digest: String = Sha256::digest(&shipped)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, sha256, "{file} was changed");
        // Where MQTTCAL_DCC_SCHEMAS names a folder of the published copies, they match byte
        // for byte.
        if let Some(reference) = std::env::var_os("MQTTCAL_DCC_SCHEMAS") {
            let theirs = std::fs::read(Path::new(&reference).join(file)).unwrap();
            assert!(theirs == shipped, "{file} differs from the reference copy");
        }
    }
}
