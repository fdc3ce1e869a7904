//! What the certificate tests share: validating and reading documents back with
//! xmllint, which `scripts/test.sh` installs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mqttcal_testkit::xmllint;
use std::process::Command;

pub(crate) fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/dcc-3.1.2/dcc.xsd")
}

/// Writes `xml` to a file; `Err` with xmllint's complaint if it does not validate.
pub(crate) fn validate(xml: &str) -> Result<tempfile::NamedTempFile, String> {
    let file = tempfile::Builder::new().suffix(".xml").tempfile().unwrap();
    std::fs::write(file.path(), xml).unwrap();
    let out = Command::new(xmllint())
        .arg("--noout")
        .arg("--schema")
        .arg(schema())
        .arg(file.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(file)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The text of the first node `xpath` selects in the XML file `file`, as an XML parser
/// reads it.
pub(crate) fn read_back(file: &Path, xpath: &str) -> String {
    query(file, xpath, false)
}

/// The text of what `xpath` selects in the HTML page `html`, as libxml2's HTML parser
/// reads it.
pub(crate) fn html_text(html: &str, xpath: &str) -> String {
    let file = tempfile::Builder::new().suffix(".html").tempfile().unwrap();
    std::fs::write(file.path(), html).unwrap();
    query(file.path(), xpath, true)
}

fn query(file: &Path, xpath: &str, html: bool) -> String {
    let mut cmd = Command::new(xmllint());
    if html {
        cmd.arg("--html");
    }
    let out = cmd
        .args(["--xpath", &format!("string({xpath})")])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::from_utf8(out.stdout).unwrap();
    // xmllint ends what it prints with a newline of its own.
    if text.ends_with('\n') {
        text.pop();
    }
    text
}
