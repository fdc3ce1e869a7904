//! Calibration certificates: the data a certificate states ([`CertificateData`]), checked
//! once ([`CertificateData::check`]) and rendered to each format from the same data.
//!
//! - [`dcc`]: the Digital Calibration Certificate (PTB DCC 3.1.2, XML), values as D-SI
//!   `si:real` with `si:expandedUnc`; it validates against the schemas shipped in
//!   `schemas/dcc-3.1.2/`.
//! - [`Templates`]: documents from Tera templates (the printable HTML certificate), the
//!   built-in ones overridden file by file by a laboratory's own folder.
//! - `Templates::certificate_pdf` (feature `pdf`): the certificate as PDF/A-2b, typeset by
//!   Typst from `certificate.typ` with the data passed as JSON, fonts embedded.
//! - [`XmlSigner`]: the signed DCC, an enveloped XML signature made by `xmlsec1` with a key
//!   kept outside the database; [`without_signature`] gives back what validates.
//!
//! Numbers are carried as the reported decimal strings (U to two significant digits, the
//! value to the same decimal place; see `mqttcal_metrology::Reported`), so every format
//! states exactly the stored digits. No user string is ever pasted into markup: each
//! format escapes by its own rules.
//!
//! ```
//! use mqttcal_certificates::{dcc, example, Status};
//! let mut data = example();
//! data.customer.name = "Rossi & Figli <S.p.A.>".into();
//! let xml = dcc(&data).unwrap();
//! assert!(xml.contains("Rossi &amp; Figli &lt;S.p.A.&gt;"));
//! // Bad data is refused with the field named, before anything is written.
//! data.results[0].value = "10,5".into();
//! let err = dcc(&data).unwrap_err();
//! assert_eq!(err.field, "results[0].value");
//! assert_eq!(data.status, Status::Draft);
//! ```
//!
//! ## Features
//!
//! - `pdf` (off by default): PDF/A output typeset by Typst with its fonts embedded
//!   (`Templates::certificate_pdf`, `Templates::printable`, `Templates::render_pdf_with`,
//!   and the `.typ` templates). It compiles Typst in, which makes a cold build much longer.

mod check;
mod dcc;
mod limits;
mod model;
#[cfg(feature = "pdf")]
mod pdf;
mod sign;
mod templates;
mod units;
mod xml;

pub use check::CertificateError;
pub use dcc::{dcc, DCC_VERSION};
pub use model::{
    Address, Amendment, CertificateData, Condition, Equipment, Item, Method, Party,
    PerformanceLocation, Person, ResultLine, Software, Status,
};
pub use sign::{with_signature_template, without_signature, SignError, XmlSigner};
pub use templates::{TemplateError, Templates};
pub use units::si_unit;

/// A complete draft certificate of a 10 V Zener standard: for examples, tests and the
/// documentation.
pub fn example() -> CertificateData {
    let address = |street: &str, no: &str, post: &str, city: &str| Address {
        street: street.into(),
        street_no: Some(no.into()),
        post_code: post.into(),
        city: city.into(),
        country: "IT".into(),
    };
    CertificateData {
        number: "DRAFT-JOB-2026-0042".into(),
        status: Status::Draft,
        language: "en".into(),
        country: "IT".into(),
        begin: "2026-11-30".into(),
        end: "2026-12-01".into(),
        received: Some("2026-11-27".into()),
        issued: None,
        performed_at: PerformanceLocation::Laboratory,
        laboratory: Party {
            name: "Example Calibration Laboratory".into(),
            email: "lab@example.org".into(),
            phone: Some("+39 011 000 0000".into()),
            address: address("Via dell'Esempio", "1", "10100", "Torino"),
            code: Some("LAT 000".into()),
        },
        customer: Party {
            name: "Example Instruments S.r.l.".into(),
            email: "quality@example.com".into(),
            phone: None,
            address: address("Via Roma", "1", "20121", "Milano"),
            code: None,
        },
        item: Item {
            name: "DC voltage standard (Zener), 10 V output".into(),
            manufacturer: "Fluke".into(),
            model: Some("732B".into()),
            serial: "1234567".into(),
            id: Some("Z1".into()),
        },
        persons: vec![
            Person {
                name: "Ada Operator".into(),
                role: "calibrated".into(),
                main_signer: false,
            },
            Person {
                name: "Bruno Reviewer".into(),
                role: "reviewed".into(),
                main_signer: false,
            },
        ],
        method: Method {
            name: "Reverse-polarity comparison with a reference Zener standard".into(),
            description: Some(
                "Series opposition against the reference, sequence + - - + per group".into(),
            ),
            norms: vec!["Procedure PT-DCV-01".into()],
        },
        equipment: vec![
            crate::Equipment {
                name: "Reference standard".into(),
                id: "Z0".into(),
                manufacturer: Some("Fluke".into()),
                model: Some("732B".into()),
                serial: Some("7654321".into()),
                calibration_due: Some("2027-06-30".into()),
            },
            crate::Equipment {
                name: "Digital multimeter".into(),
                id: "DMM1".into(),
                manufacturer: Some("Keysight".into()),
                model: Some("3458A".into()),
                serial: Some("MY00000001".into()),
                calibration_due: Some("2027-03-31".into()),
            },
        ],
        conditions: vec![
            Condition {
                name: "Ambient temperature".into(),
                value: "23.1".into(),
                unit: "°C".into(),
                half_width: Some("0.3".into()),
            },
            Condition {
                name: "Atmospheric pressure".into(),
                value: "1003".into(),
                unit: "hPa".into(),
                half_width: None,
            },
        ],
        results: vec![ResultLine {
            name: "Output voltage, 10 V terminals".into(),
            value: "10.00001234".into(),
            unit: "V".into(),
            expanded_uncertainty: "0.00000093".into(),
            coverage_factor: "2.00".into(),
            coverage_probability: "0.9545".into(),
        }],
        traceability: "The results are traceable to the SI through the national standard of the volt, realised with a Josephson voltage standard.".into(),
        amends: None,
        software: Software {
            name: "mqttcal".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
    }
}
