//! Run with: `cargo run -p mqttcal-examples --bin certificate -- [--html|--pdf] [data.json] > certificate.xml`
//!
//! Renders a certificate's data (`mqttcal_certificates::CertificateData` as JSON; `-` reads
//! standard input; without an argument, the built-in example of a 10 V Zener standard) as
//! a Digital Calibration Certificate (DCC 3.1.2) on standard output, with `--html` as
//! the printable HTML page, or with `--pdf` as PDF (built with `--features pdf`). Validate the DCC with
//! `xmllint --noout --schema mqttcal-certificates/schemas/dcc-3.1.2/dcc.xsd certificate.xml`.
//! Exits non-zero naming the field on bad data; `--example-json` prints the example's data
//! as JSON, to start from.

use std::io::{Read, Write};

use mqttcal_certificates::{dcc, example, CertificateData, Templates};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(out) => match std::io::stdout().lock().write_all(&out) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("certificate: standard output: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("certificate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<Vec<u8>, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let format = match args.first().map(String::as_str) {
        Some(f @ ("--html" | "--pdf")) => {
            let f = f.to_owned();
            args.remove(0);
            f
        }
        _ => "--dcc".to_owned(),
    };
    let data: CertificateData = match args.first().map(String::as_str) {
        None => example(),
        Some("--example-json") => {
            return serde_json::to_string_pretty(&example())
                .map(|s| (s + "\n").into_bytes())
                .map_err(|e| e.to_string())
        }
        Some(path) => {
            let mut text = String::new();
            if path == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| format!("standard input: {e}"))?;
            } else {
                text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            }
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?
        }
    };
    match format.as_str() {
        "--html" => Templates::builtin()
            .certificate_html(&data)
            .map(String::into_bytes)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "pdf")]
        "--pdf" => Templates::builtin()
            .certificate_pdf(&data)
            .map_err(|e| e.to_string()),
        #[cfg(not(feature = "pdf"))]
        "--pdf" => Err("PDF needs the `pdf` feature: cargo run -p mqttcal-examples --features pdf --bin certificate -- --pdf".into()),
        _ => dcc(&data)
            .map(String::into_bytes)
            .map_err(|e| format!("bad certificate data: {e}")),
    }
}
