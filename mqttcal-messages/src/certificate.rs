//! A certificate record with its rendered documents, and amendments that cite the
//! certificate they replace.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::digest::{hex, sha256_hex};
use crate::invalid::{finite, invalid, not_empty, Invalid};
use crate::job::canonical_json;
use crate::{Base64, LabMessage};

/// A rendered document of a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateDocument {
    /// What it is, e.g. `pdf` or `dcc`.
    pub kind: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// The bytes (base64 on the wire).
    pub content: Base64,
}

impl CertificateDocument {
    /// SHA-256 of the content, hex.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.content.0)
    }

    /// A file name for the document of `kind` of the certificate (or report) `name`: `name`
    /// with anything but ASCII letters, digits and `-_.` made `_`, then the kind's extension
    /// (`dcc.xml`, `signed.dcc.xml`, `html`, `pdf`; `bin` for another kind).
    ///
    /// ```
    /// use mqttcal_messages::CertificateDocument;
    /// assert_eq!(CertificateDocument::file_name("CAL-2026/1", "dcc"), "CAL-2026_1.dcc.xml");
    /// ```
    pub fn file_name(name: &str, kind: &str) -> String {
        let stem: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let ext = match kind {
            "dcc" => "dcc.xml",
            "dcc-signed" => "signed.dcc.xml",
            "html" => "html",
            "pdf" => "pdf",
            _ => "bin",
        };
        format!("{stem}.{ext}")
    }
}

/// A certificate record. `content_hash` is SHA-256 over the certificate data (compact JSON,
/// keys sorted) and each document's kind and SHA-256 (by kind); the store computes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRecord {
    /// Certificate number.
    pub number: String,
    /// The job.
    pub job: String,
    /// Issue date.
    pub issued_at: f64,
    /// Who authorised it.
    pub authorised_by: String,
    /// The certificate this one replaces (an amendment).
    #[serde(default)]
    pub replaces: Option<String>,
    /// The certificate's data (customer, item, conditions, results, ...).
    pub data: Value,
    /// Rendered documents.
    #[serde(default)]
    pub documents: Vec<CertificateDocument>,
    /// Content hash (filled in by the store; ignored on input).
    #[serde(default)]
    pub content_hash: Option<String>,
    /// The amendment that replaces this certificate, if one does (filled in by the store;
    /// ignored on input). A certificate is replaced once: a later correction amends the
    /// amendment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
}

impl CertificateRecord {
    /// The content hash of the data and documents.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(canonical_json(&self.data).as_bytes());
        let mut docs: Vec<&CertificateDocument> = self.documents.iter().collect();
        docs.sort_by(|a, b| a.kind.cmp(&b.kind));
        for d in docs {
            h.update(d.kind.as_bytes());
            h.update([0]);
            h.update(d.sha256().as_bytes());
        }
        hex(&h.finalize())
    }
}

impl CertificateRecord {
    /// Why a store refuses an amendment for want of the certificate it replaces.
    pub fn unknown_replaced(&self) -> String {
        format!(
            "`replaces`: there is no certificate `{}`",
            self.replaces.as_deref().unwrap_or_default()
        )
    }

    /// Why a store refuses a second amendment of one certificate.
    pub fn already_replaced(&self) -> String {
        format!(
            "certificate `{}` is replaced already by another amendment: amend that one",
            self.replaces.as_deref().unwrap_or_default()
        )
    }

    /// Why a store refuses the number.
    pub fn already_issued(&self) -> String {
        format!(
            "certificate `{}` is issued already: an amendment takes a new number and names the one it `replaces`",
            self.number
        )
    }

    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("number", &self.number)?;
        not_empty("job", &self.job)?;
        not_empty("authorised_by", &self.authorised_by)?;
        finite("issued_at", self.issued_at)?;
        if self.replaces.as_deref() == Some(self.number.as_str()) {
            return Err(invalid("a certificate cannot replace itself"));
        }
        let mut kinds = std::collections::HashSet::new();
        for d in &self.documents {
            not_empty("documents[].kind", &d.kind)?;
            if !kinds.insert(d.kind.as_str()) {
                return Err(invalid(format!("two documents of kind `{}`", d.kind)));
            }
        }
        Ok(())
    }
}

impl LabMessage for CertificateRecord {
    const NAME: &'static str = "certificate";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_content_hash_covers_data_and_documents() {
        let mut c: CertificateRecord = serde_json::from_value(json!({
            "number": "C-1", "job": "J1", "issued_at": 1.0, "authorised_by": "A. Person",
            "data": {"customer": "X"},
            "documents": [{"kind": "pdf", "media_type": "application/pdf", "content": "JVBERi0="}]
        }))
        .unwrap();
        let h = c.compute_hash();
        assert_eq!(h.len(), 64);
        c.documents[0].content.0.push(b'!');
        assert_ne!(c.compute_hash(), h);
        c.documents[0].content.0.pop();
        c.data = json!({"customer": "Y"});
        assert_ne!(c.compute_hash(), h);
    }

    #[test]
    fn two_documents_of_one_kind_are_refused() {
        let c: CertificateRecord = serde_json::from_value(json!({
            "number": "C-1", "job": "J1", "issued_at": 1.0, "authorised_by": "A. Person", "data": {},
            "documents": [{"kind": "pdf", "media_type": "application/pdf", "content": ""},
                          {"kind": "pdf", "media_type": "application/pdf", "content": ""}]
        }))
        .unwrap();
        assert_eq!(c.validate().unwrap_err().0, "two documents of kind `pdf`");
    }
}
