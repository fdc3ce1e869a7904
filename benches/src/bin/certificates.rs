//! Certificates rendered per second, for each format, from one certificate's data.
//!
//! Run with: cargo build --release -p mqttcal-benches && target/release/certificates --count 500
//! (`--features pdf` for the PDF rate too).
//!
//! Renders the example certificate `--count` times as a DCC (XML), as the HTML page, and
//! both from the same data (what tpld's `certificate` does per job); built with the `pdf`
//! feature also as PDF and all three formats; with `--sign` also
//! the signed DCC, each signature a run of xmlsec1 (found as the tests find it:
//! `MQTTCAL_XMLSEC1`, `MQTTCAL_OPENSSL`, else the `PATH`). Each number varies the certificate (its number and value),
//! so nothing is rendered from a cache. Prints one JSON line.

use std::time::Instant;

use mqttcal_benches::{number_arg, round1};
use mqttcal_certificates::{dcc, example, CertificateData, Templates, XmlSigner};
use serde_json::json;

fn data(i: usize) -> CertificateData {
    let mut d = example();
    d.number = format!("CAL-2026-{i:04}");
    d.results[0].value = format!("10.0000{:04}", i % 10_000);
    d
}

/// Rate of `f` over `count` certificates, per second.
fn rate(count: usize, mut f: impl FnMut(&CertificateData) -> usize) -> f64 {
    let all: Vec<CertificateData> = (0..count).map(data).collect();
    let t0 = Instant::now();
    let mut bytes = 0;
    for d in &all {
        bytes += f(d);
    }
    assert!(bytes > 0);
    count as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count = number_arg(&args, "--count", 500).max(1);
    let templates = Templates::builtin();
    let dcc_rate = rate(count, |d| dcc(d).unwrap().len());
    let html_rate = rate(count, |d| templates.certificate_html(d).unwrap().len());
    let both_rate = rate(count, |d| {
        dcc(d).unwrap().len() + templates.certificate_html(d).unwrap().len()
    });
    let mut line = json!({
        "bench": "certificates",
        "count": count,
        "dcc_per_s": round1(dcc_rate),
        "html_per_s": round1(html_rate),
        "dcc_and_html_per_s": round1(both_rate),
    });
    #[cfg(feature = "pdf")]
    {
        let pdf_count = count.min(200);
        // The first rendering loads the embedded fonts: not counted.
        templates.certificate_pdf(&data(0)).unwrap();
        let pdf_rate = rate(pdf_count, |d| templates.certificate_pdf(d).unwrap().len());
        let all_rate = rate(pdf_count, |d| {
            dcc(d).unwrap().len()
                + templates.certificate_html(d).unwrap().len()
                + templates.certificate_pdf(d).unwrap().len()
        });
        line["pdf_count"] = json!(pdf_count);
        line["pdf_per_s"] = json!(round1(pdf_rate));
        line["dcc_html_pdf_per_s"] = json!(round1(all_rate));
    }
    if args.iter().any(|a| a == "--sign") {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = mqttcal_testkit::self_signed_pair(dir.path(), "bench");
        let signer = XmlSigner::new(mqttcal_testkit::xmlsec1(), &key, &cert);
        let signed = rate(count.min(100), |d| {
            signer.sign(&dcc(d).unwrap()).unwrap().len()
        });
        line["signed_dcc_per_s"] = json!(round1(signed));
    }
    println!("{line}");
}
