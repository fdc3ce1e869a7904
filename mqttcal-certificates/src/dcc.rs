//! The Digital Calibration Certificate (PTB DCC 3.1.2) with D-SI 2.1.0 values.

use crate::check::CertificateError;
use crate::model::{CertificateData, Party, Status};
use crate::units::si_unit;
use crate::xml::XmlWriter;

/// The DCC schema version written.
pub const DCC_VERSION: &str = "3.1.2";

const DCC_NS: &str = "https://ptb.de/dcc";
const SI_NS: &str = "https://ptb.de/si";

/// Renders `data` as a DCC (XML), after [`CertificateData::check`]. Every string is
/// escaped; numbers are written exactly as given (the reported digits). A certificate
/// that is not issued says so in a statement (`DRAFT`, or its status).
///
/// ```
/// let data = mqttcal_certificates::example();
/// let xml = mqttcal_certificates::dcc(&data).unwrap();
/// assert!(xml.contains("<si:value>10.00001234</si:value>"));
/// assert!(xml.contains("<si:unit>\\volt</si:unit>"));
/// ```
pub fn dcc(data: &CertificateData) -> Result<String, CertificateError> {
    data.check()?;
    let mut w = XmlWriter::new();
    w.open(
        "dcc:digitalCalibrationCertificate",
        &[
            ("xmlns:dcc", DCC_NS),
            ("xmlns:si", SI_NS),
            ("schemaVersion", DCC_VERSION),
        ],
    );
    administrative_data(&mut w, data);
    measurement_results(&mut w, data);
    w.close();
    Ok(w.finish())
}

/// A `dcc:textType` element: one `dcc:content` in the certificate's language.
fn text(w: &mut XmlWriter, name: &'static str, lang: &str, s: &str) {
    w.open(name, &[]);
    w.text("dcc:content", &[("lang", lang)], s);
    w.close();
}

fn administrative_data(w: &mut XmlWriter, d: &CertificateData) {
    let lang = d.language.as_str();
    w.open("dcc:administrativeData", &[]);

    w.open("dcc:dccSoftware", &[]);
    w.open("dcc:software", &[]);
    text(w, "dcc:name", lang, &d.software.name);
    w.text("dcc:release", &[], &d.software.version);
    w.close();
    w.close();

    w.open("dcc:coreData", &[]);
    w.text("dcc:countryCodeISO3166_1", &[], &d.country);
    w.text("dcc:usedLangCodeISO639_1", &[], lang);
    w.text("dcc:mandatoryLangCodeISO639_1", &[], lang);
    w.text("dcc:uniqueIdentifier", &[], &d.number);
    if let Some(received) = &d.received {
        w.text("dcc:receiptDate", &[], received);
    }
    w.text("dcc:beginPerformanceDate", &[], &d.begin);
    w.text("dcc:endPerformanceDate", &[], &d.end);
    w.text("dcc:performanceLocation", &[], d.performed_at.as_str());
    if let Some(a) = &d.amends {
        w.open("dcc:previousReport", &[]);
        text(w, "dcc:referral", lang, "Certificate replaced by this one");
        w.text("dcc:referralID", &[], &a.replaces);
        w.text("dcc:procedure", &[], "SHA-256");
        w.text("dcc:value", &[], &a.content_hash);
        w.close();
    }
    w.close();

    w.open("dcc:items", &[]);
    w.open("dcc:item", &[]);
    text(w, "dcc:name", lang, &d.item.name);
    w.open("dcc:manufacturer", &[]);
    text(w, "dcc:name", lang, &d.item.manufacturer);
    w.close();
    if let Some(model) = &d.item.model {
        w.text("dcc:model", &[], model);
    }
    w.open("dcc:identifications", &[]);
    identification(w, lang, "manufacturer", &d.item.serial, "Serial number");
    if let Some(id) = &d.item.id {
        identification(w, lang, "calibrationLaboratory", id, "Equipment id");
    }
    w.close();
    w.close();
    w.close();

    w.open("dcc:calibrationLaboratory", &[]);
    if let Some(code) = &d.laboratory.code {
        w.text("dcc:calibrationLaboratoryCode", &[], code);
    }
    contact(w, "dcc:contact", lang, &d.laboratory);
    w.close();

    w.open("dcc:respPersons", &[]);
    for p in &d.persons {
        w.open("dcc:respPerson", &[]);
        w.open("dcc:person", &[]);
        text(w, "dcc:name", lang, &p.name);
        w.close();
        w.text("dcc:role", &[], &p.role);
        if p.main_signer {
            w.text("dcc:mainSigner", &[], "true");
        }
        w.close();
    }
    w.close();

    contact(w, "dcc:customer", lang, &d.customer);

    w.open("dcc:statements", &[]);
    statement(w, lang, &d.traceability, Some(true));
    if let Some(a) = &d.amends {
        statement(
            w,
            lang,
            &format!(
                "This certificate replaces certificate {}: {}",
                a.replaces, a.reason
            ),
            None,
        );
    }
    if d.status != Status::Issued {
        statement(
            w,
            lang,
            &format!(
                "DRAFT ({}): not a valid calibration certificate",
                status_name(d.status)
            ),
            None,
        );
    }
    w.close();

    w.close();
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Draft => "draft",
        Status::Reviewed => "reviewed",
        Status::Authorised => "authorised",
        Status::Issued => "issued",
    }
}

fn identification(w: &mut XmlWriter, lang: &str, issuer: &str, value: &str, name: &str) {
    w.open("dcc:identification", &[]);
    w.text("dcc:issuer", &[], issuer);
    w.text("dcc:value", &[], value);
    text(w, "dcc:name", lang, name);
    w.close();
}

fn statement(w: &mut XmlWriter, lang: &str, s: &str, traceable: Option<bool>) {
    w.open("dcc:statement", &[]);
    if let Some(t) = traceable {
        w.text("dcc:traceable", &[], if t { "true" } else { "false" });
    }
    w.open("dcc:declaration", &[]);
    w.text("dcc:content", &[("lang", lang)], s);
    w.close();
    w.close();
}

/// A `dcc:contactType`: name, e-mail, phone, and the address as location parts.
fn contact(w: &mut XmlWriter, element: &'static str, lang: &str, p: &Party) {
    w.open(element, &[]);
    text(w, "dcc:name", lang, &p.name);
    w.text("dcc:eMail", &[], &p.email);
    if let Some(phone) = &p.phone {
        w.text("dcc:phone", &[], phone);
    }
    w.open("dcc:location", &[]);
    let a = &p.address;
    w.text("dcc:city", &[], &a.city);
    w.text("dcc:countryCode", &[], &a.country);
    w.text("dcc:postCode", &[], &a.post_code);
    w.text("dcc:street", &[], &a.street);
    if let Some(no) = &a.street_no {
        w.text("dcc:streetNo", &[], no);
    }
    w.close();
    w.close();
}

/// A `si:real`: value and D-SI unit, with U, k and p when given.
fn real(w: &mut XmlWriter, value: &str, unit: &str, expanded: Option<(&str, &str, &str)>) {
    w.open("si:real", &[]);
    w.text("si:value", &[], value);
    // Checked before rendering: every unit here is known.
    w.text("si:unit", &[], &si_unit(unit).unwrap_or_default());
    if let Some((u, k, p)) = expanded {
        w.open("si:expandedUnc", &[]);
        w.text("si:uncertainty", &[], u);
        w.text("si:coverageFactor", &[], k);
        w.text("si:coverageProbability", &[], p);
        w.close();
    }
    w.close();
}

fn measurement_results(w: &mut XmlWriter, d: &CertificateData) {
    let lang = d.language.as_str();
    w.open("dcc:measurementResults", &[]);
    w.open("dcc:measurementResult", &[]);
    text(w, "dcc:name", lang, "Calibration results");

    w.open("dcc:usedMethods", &[]);
    w.open("dcc:usedMethod", &[]);
    text(w, "dcc:name", lang, &d.method.name);
    if let Some(desc) = &d.method.description {
        w.open("dcc:description", &[]);
        w.text("dcc:content", &[("lang", lang)], desc);
        w.close();
    }
    for norm in &d.method.norms {
        w.text("dcc:norm", &[], norm);
    }
    w.close();
    w.close();

    if !d.equipment.is_empty() {
        w.open("dcc:measuringEquipments", &[]);
        for e in &d.equipment {
            w.open("dcc:measuringEquipment", &[]);
            text(w, "dcc:name", lang, &e.name);
            if let Some(due) = &e.calibration_due {
                w.open("dcc:description", &[]);
                w.text(
                    "dcc:content",
                    &[("lang", lang)],
                    &format!("Calibration due {due}"),
                );
                w.close();
            }
            if let Some(m) = &e.manufacturer {
                w.open("dcc:manufacturer", &[]);
                text(w, "dcc:name", lang, m);
                w.close();
            }
            if let Some(model) = &e.model {
                w.text("dcc:model", &[], model);
            }
            w.open("dcc:identifications", &[]);
            identification(w, lang, "calibrationLaboratory", &e.id, "Equipment id");
            if let Some(serial) = &e.serial {
                identification(w, lang, "manufacturer", serial, "Serial number");
            }
            w.close();
            w.close();
        }
        w.close();
    }

    if !d.conditions.is_empty() {
        w.open("dcc:influenceConditions", &[]);
        for c in &d.conditions {
            w.open("dcc:influenceCondition", &[]);
            text(w, "dcc:name", lang, &c.name);
            w.open("dcc:data", &[]);
            w.open("dcc:quantity", &[]);
            real(w, &c.value, &c.unit, None);
            w.close();
            if let Some(h) = &c.half_width {
                w.open("dcc:quantity", &[]);
                text(w, "dcc:name", lang, "Half-width of the range seen");
                real(w, h, &c.unit, None);
                w.close();
            }
            w.close();
            w.close();
        }
        w.close();
    }

    w.open("dcc:results", &[]);
    for r in &d.results {
        w.open("dcc:result", &[]);
        text(w, "dcc:name", lang, &r.name);
        w.open("dcc:data", &[]);
        w.open("dcc:quantity", &[]);
        real(
            w,
            &r.value,
            &r.unit,
            Some((
                &r.expanded_uncertainty,
                &r.coverage_factor,
                &r.coverage_probability,
            )),
        );
        w.close();
        w.close();
        w.close();
    }
    w.close();

    w.close();
    w.close();
}
