//! What the certificate tests share: the tools `scripts/test.sh` installs, by the
//! environment variables it sets.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tool named by environment variable `var`; fails naming the script that installs it.
pub(crate) fn tool(var: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(
        || panic!("{var} is not set: run the tests with scripts/test.sh, which installs it (Debian package {package}) and sets it"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} ({var}) does not exist: run the tests with scripts/test.sh, which installs it (Debian package {package})",
        path.display()
    );
    path
}

/// `xmllint` (libxml2).
pub(crate) fn xmllint() -> PathBuf {
    tool("MQTTCAL_XMLLINT", "libxml2-utils")
}

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

/// The text of the first node `xpath` selects, as an XML parser reads it.
pub(crate) fn read_back(file: &Path, xpath: &str) -> String {
    let out = Command::new(xmllint())
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
