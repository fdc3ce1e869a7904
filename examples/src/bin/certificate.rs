//! Run with: `cargo run -p mqttcal-examples --bin certificate -- [--html] [data.json] > certificate.xml`
//!
//! Renders a certificate's data (`mqttcal_certificates::CertificateData` as JSON; `-` reads
//! standard input; without an argument, the built-in example of a 10 V Zener standard) as
//! a Digital Calibration Certificate (DCC 3.1.2) on standard output, or with `--html` as
//! the printable HTML page. Validate the DCC with
//! `xmllint --noout --schema mqttcal-certificates/schemas/dcc-3.1.2/dcc.xsd certificate.xml`.
//! Exits non-zero naming the field on bad data; `--example-json` prints the example's data
//! as JSON, to start from.

use std::io::Read;

use mqttcal_certificates::{dcc, example, CertificateData, Templates};

fn main() -> std::process::ExitCode {
    match run() {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("certificate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<String, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let html = args.first().is_some_and(|a| a == "--html");
    if html {
        args.remove(0);
    }
    let data: CertificateData = match args.first().map(String::as_str) {
        None => example(),
        Some("--example-json") => {
            return serde_json::to_string_pretty(&example())
                .map(|s| s + "\n")
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
    if html {
        return Templates::builtin()
            .certificate_html(&data)
            .map_err(|e| e.to_string());
    }
    dcc(&data).map_err(|e| format!("bad certificate data: {e}"))
}
