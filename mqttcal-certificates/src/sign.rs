//! The signed DCC: an enveloped XML signature (XML-DSig, RSA-SHA256 over the exclusive
//! canonical form) appended as the last child of the root element, the convention of the
//! DCC community's tools. The DCC schema has no slot for it: the document is validated
//! without its signature ([`without_signature`]), and the signed file is verified as a
//! signature (`xmlsec1 --verify`).
//!
//! Signing runs `xmlsec1` (Debian package `xmlsec1`), given the paths of the private key
//! and its certificate: the key never enters this process, and it is kept where the
//! laboratory keeps keys, outside the database.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The root element's closing tag, before which the signature goes.
const ROOT_END: &str = "</dcc:digitalCalibrationCertificate>";

/// The signature element's start, as the template writes it.
const SIGNATURE_START: &str = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">";
const SIGNATURE_END: &str = "</ds:Signature>";

/// What xmlsec1 fills in: an enveloped signature over the whole document.
const TEMPLATE: &str = r#"  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue/>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue/>
    <ds:KeyInfo>
      <ds:X509Data>
        <ds:X509Certificate/>
      </ds:X509Data>
    </ds:KeyInfo>
  </ds:Signature>
"#;

/// How long `xmlsec1` may take before it is stopped.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Signing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The document is not a DCC as [`crate::dcc`] writes it, or is signed already.
    #[error("cannot sign this document: {0}")]
    Document(String),
    /// The tool could not be run, or failed.
    #[error("{program}: {problem}")]
    Tool {
        /// The program run.
        program: String,
        /// What went wrong (its error output, or advice).
        problem: String,
    },
}

/// Signs DCCs with `xmlsec1`, a private key and its X.509 certificate (PEM files).
///
/// ```no_run
/// use mqttcal_certificates::{dcc, example, XmlSigner};
/// let signer = XmlSigner::new("/usr/bin/xmlsec1", "/etc/mqttcal/dcc-key.pem", "/etc/mqttcal/dcc-cert.pem");
/// let signed = signer.sign(&dcc(&example()).unwrap()).unwrap();
/// assert!(signed.contains("<ds:SignatureValue>"));
/// ```
#[derive(Debug, Clone)]
pub struct XmlSigner {
    program: PathBuf,
    key: PathBuf,
    certificate: PathBuf,
}

impl XmlSigner {
    /// A signer running `program` (xmlsec1) with the key and certificate at these paths.
    pub fn new(
        program: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
        certificate: impl Into<PathBuf>,
    ) -> Self {
        Self {
            program: program.into(),
            key: key.into(),
            certificate: certificate.into(),
        }
    }

    /// The DCC `xml` with its enveloped signature as the root's last child.
    pub fn sign(&self, xml: &str) -> Result<String, SignError> {
        for (what, path) in [("key", &self.key), ("certificate", &self.certificate)] {
            if !path.is_file() {
                return Err(SignError::Tool {
                    program: self.program.display().to_string(),
                    problem: format!(
                        "the signing {what} {} is not a readable file",
                        path.display()
                    ),
                });
            }
        }
        let dir = tempfile::tempdir().map_err(|e| self.failed(format!("a work folder: {e}")))?;
        let input = dir.path().join("unsigned.xml");
        let output = dir.path().join("signed.xml");
        std::fs::write(&input, with_signature_template(xml)?)
            .map_err(|e| self.failed(format!("writing {}: {e}", input.display())))?;
        let mut keys = self.key.clone().into_os_string();
        keys.push(",");
        keys.push(&self.certificate);
        let mut cmd = Command::new(&self.program);
        cmd.arg("--sign")
            .arg("--privkey-pem")
            .arg(keys)
            .arg("--output")
            .arg(&output)
            .arg(&input);
        self.run(cmd)?;
        std::fs::read_to_string(&output)
            .map_err(|e| self.failed(format!("reading {}: {e}", output.display())))
    }

    /// Whether `signed` carries a valid signature by a certificate that `trusted` (a PEM
    /// file: the certificate itself, or the CA that issued it) vouches for.
    pub fn verify(&self, signed: &str, trusted: &Path) -> Result<bool, SignError> {
        let dir = tempfile::tempdir().map_err(|e| self.failed(format!("a work folder: {e}")))?;
        let input = dir.path().join("signed.xml");
        std::fs::write(&input, signed)
            .map_err(|e| self.failed(format!("writing {}: {e}", input.display())))?;
        let mut cmd = Command::new(&self.program);
        cmd.arg("--verify")
            .arg("--trusted-pem")
            .arg(trusted)
            .arg(&input);
        match self.run(cmd) {
            Ok(()) => Ok(true),
            Err(SignError::Tool { problem, .. }) if problem.contains("failed to verify") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn failed(&self, problem: String) -> SignError {
        SignError::Tool {
            program: self.program.display().to_string(),
            problem,
        }
    }

    /// Runs `cmd` to its end (within [`TOOL_TIMEOUT`]); its error output on failure.
    fn run(&self, mut cmd: Command) -> Result<(), SignError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.failed(format!(
                    "cannot run it ({e}): install xmlsec1 (Debian package xmlsec1) or configure its path"
                ))
            })?;
        let mut stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_string(&mut text);
            }
            text
        });
        let end = Instant::now() + TOOL_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(self.failed(format!("did not finish within {TOOL_TIMEOUT:?}")));
                }
                Err(e) => return Err(self.failed(e.to_string())),
            }
        };
        let stderr = reader.join().unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(format!("{status}: {}", stderr.trim())))
        }
    }
}

/// `xml` with an empty signature (the template xmlsec1 fills in) as the root's last child.
pub fn with_signature_template(xml: &str) -> Result<String, SignError> {
    if xml.contains(SIGNATURE_START) {
        return Err(SignError::Document("it is signed already".into()));
    }
    let at = xml
        .rfind(ROOT_END)
        .filter(|&at| xml[at + ROOT_END.len()..].trim().is_empty())
        .ok_or_else(|| SignError::Document("no DCC root element at its end".into()))?;
    Ok(format!("{}{TEMPLATE}{}", &xml[..at], &xml[at..]))
}

/// The signed DCC `xml` without its signature: what validates against the DCC schema.
pub fn without_signature(xml: &str) -> String {
    let Some(start) = xml.rfind(SIGNATURE_START) else {
        return xml.to_owned();
    };
    let Some(len) = xml[start..].find(SIGNATURE_END) else {
        return xml.to_owned();
    };
    let mut end = start + len + SIGNATURE_END.len();
    // The line the template gave it, too.
    let line_start = xml[..start].rfind('\n').map_or(start, |i| i + 1);
    let start = if xml[line_start..start].trim().is_empty() {
        line_start
    } else {
        start
    };
    if xml[end..].starts_with('\n') {
        end += 1;
    }
    format!("{}{}", &xml[..start], &xml[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_goes_last_and_comes_out_again() {
        let xml = crate::dcc(&crate::example()).unwrap();
        let templated = with_signature_template(&xml).unwrap();
        assert!(templated
            .trim_end()
            .ends_with(&format!("{SIGNATURE_END}\n{ROOT_END}")));
        assert_eq!(without_signature(&templated), xml);
        assert!(matches!(
            with_signature_template(&templated),
            Err(SignError::Document(_))
        ));
        assert!(with_signature_template("<a/>").is_err());
    }
}
