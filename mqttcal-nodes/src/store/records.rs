//! The records of an ISO/IEC 17025 laboratory beside its measurements: the equipment register
//! with each item's calibration history, results with their uncertainty budget, and
//! certificate records with their rendered documents.

use mqttcal_core::Base64;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::StoreError;

/// What an item of the equipment register is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EquipmentKind {
    /// A standard (the lab's own, or a customer's under calibration).
    Standard,
    /// A measuring instrument.
    Instrument,
}

impl EquipmentKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Instrument => "instrument",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "standard" => Ok(Self::Standard),
            "instrument" => Ok(Self::Instrument),
            other => Err(StoreError::Query(format!(
                "unknown equipment kind `{other}`"
            ))),
        }
    }
}

/// An item of the equipment register (times in seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Equipment {
    /// Identity, e.g. `Z1` or `dmm-2823A12345`.
    pub id: String,
    /// Standard or instrument.
    pub kind: EquipmentKind,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Owner (the lab, or the customer).
    #[serde(default)]
    pub owner: Option<String>,
    /// Nominal value, for a standard.
    #[serde(default)]
    pub nominal_value: Option<f64>,
    /// Unit of the nominal value.
    #[serde(default)]
    pub unit: Option<String>,
    /// Where it is kept.
    #[serde(default)]
    pub location: Option<String>,
    /// When its calibration falls due.
    #[serde(default)]
    pub calibration_due: Option<f64>,
    /// When it arrived in the lab.
    #[serde(default)]
    pub checked_in: Option<f64>,
    /// When it left the lab.
    #[serde(default)]
    pub checked_out: Option<f64>,
}

/// One calibration of an item: what its certificate says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationRecord {
    /// The item (an `id` of the equipment register).
    pub equipment: String,
    /// Date of the calibration.
    pub calibrated_at: f64,
    /// Value found.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Expanded uncertainty, in `unit`.
    pub uncertainty: f64,
    /// Coverage factor of `uncertainty`.
    pub coverage_factor: f64,
    /// Certificate number.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Laboratory that issued it.
    #[serde(default)]
    pub laboratory: Option<String>,
}

/// A result of a calibration job, with its uncertainty budget. A correction is a new result
/// that cites the one it amends, with a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultRecord {
    /// The job.
    pub job: String,
    /// The measurand, e.g. `Z1 output voltage`.
    pub quantity: String,
    /// The standard calibrated, if any.
    #[serde(default)]
    pub standard: Option<String>,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Combined standard uncertainty u.
    pub standard_uncertainty: f64,
    /// Coverage factor k.
    pub coverage_factor: f64,
    /// Expanded uncertainty U = k u.
    pub expanded_uncertainty: f64,
    /// Effective degrees of freedom (Welch-Satterthwaite), if computed.
    #[serde(default)]
    pub effective_dof: Option<f64>,
    /// The uncertainty budget: one entry per contribution.
    pub budget: Value,
    /// Whether the environment stayed within the procedure's limits.
    #[serde(default)]
    pub environment_ok: Option<bool>,
    /// The software that computed it.
    pub software_version: String,
    /// Hash of the measurement configuration used.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// The result this one corrects.
    #[serde(default)]
    pub amends: Option<i64>,
    /// Why (required with `amends`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who recorded it.
    #[serde(default)]
    pub recorded_by: Option<String>,
}

/// A stored result: its id and when it was recorded.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StoredResult {
    /// Id, cited by a correction.
    pub id: i64,
    /// When it was stored.
    pub recorded_at: f64,
    /// The result.
    #[serde(flatten)]
    pub result: ResultRecord,
}

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
        hex(&Sha256::digest(&self.content.0))
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
}

impl CertificateRecord {
    /// The content hash of the data and documents.
    pub fn compute_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.data.to_string().as_bytes());
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

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

fn finite(name: &str, x: f64) -> Result<(), StoreError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(invalid(format!("`{name}` must be a finite number")))
    }
}

fn not_empty(name: &str, s: &str) -> Result<(), StoreError> {
    if s.trim().is_empty() {
        Err(invalid(format!("`{name}` must not be empty")))
    } else {
        Ok(())
    }
}

impl Equipment {
    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), StoreError> {
        not_empty("id", &self.id)?;
        for (name, v) in [
            ("nominal_value", self.nominal_value),
            ("calibration_due", self.calibration_due),
            ("checked_in", self.checked_in),
            ("checked_out", self.checked_out),
        ] {
            if let Some(x) = v {
                finite(name, x)?;
            }
        }
        if let (Some(i), Some(o)) = (self.checked_in, self.checked_out) {
            if o < i {
                return Err(invalid("`checked_out` is before `checked_in`"));
            }
        }
        Ok(())
    }
}

impl CalibrationRecord {
    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), StoreError> {
        not_empty("equipment", &self.equipment)?;
        not_empty("unit", &self.unit)?;
        finite("calibrated_at", self.calibrated_at)?;
        finite("value", self.value)?;
        finite("uncertainty", self.uncertainty)?;
        if self.uncertainty < 0.0 {
            return Err(invalid("`uncertainty` must not be negative"));
        }
        if !(self.coverage_factor.is_finite() && self.coverage_factor > 0.0) {
            return Err(invalid("`coverage_factor` must be positive"));
        }
        Ok(())
    }

    /// Why the database refused the record for want of its item.
    pub(crate) fn unknown_equipment(&self) -> String {
        format!(
            "`{}` is not in the equipment register: register it first",
            self.equipment
        )
    }
}

impl ResultRecord {
    /// Why the database refused a correction for want of the result it amends.
    pub(crate) fn unknown_amended(&self) -> String {
        format!(
            "`amends`: there is no result {}",
            self.amends.unwrap_or_default()
        )
    }

    /// Checks the record before it is stored: finite numbers, u ≥ 0, k > 0, U = k u (to
    /// 1 part in 10⁶), a reason with every correction.
    pub fn validate(&self) -> Result<(), StoreError> {
        not_empty("job", &self.job)?;
        not_empty("quantity", &self.quantity)?;
        not_empty("unit", &self.unit)?;
        not_empty("software_version", &self.software_version)?;
        finite("value", self.value)?;
        finite("standard_uncertainty", self.standard_uncertainty)?;
        finite("expanded_uncertainty", self.expanded_uncertainty)?;
        if self.standard_uncertainty < 0.0 {
            return Err(invalid("`standard_uncertainty` must not be negative"));
        }
        if !(self.coverage_factor.is_finite() && self.coverage_factor > 0.0) {
            return Err(invalid("`coverage_factor` must be positive"));
        }
        let ku = self.coverage_factor * self.standard_uncertainty;
        if (self.expanded_uncertainty - ku).abs() > 1e-6 * ku.abs().max(f64::MIN_POSITIVE) {
            return Err(invalid(format!(
                "`expanded_uncertainty` {} is not `coverage_factor` × `standard_uncertainty` = {ku}",
                self.expanded_uncertainty
            )));
        }
        if let Some(dof) = self.effective_dof {
            if !dof.is_finite() || dof <= 0.0 {
                return Err(invalid("`effective_dof` must be positive"));
            }
        }
        if self.amends.is_some() && self.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(invalid("a correction (`amends`) needs a `reason`"));
        }
        Ok(())
    }
}

impl CertificateRecord {
    /// Why the database refused an amendment for want of the certificate it replaces.
    pub(crate) fn unknown_replaced(&self) -> String {
        format!(
            "`replaces`: there is no certificate `{}`",
            self.replaces.as_deref().unwrap_or_default()
        )
    }

    /// Why the database refused the number.
    pub(crate) fn already_issued(&self) -> String {
        format!(
            "certificate `{}` is issued already: an amendment takes a new number and names the one it `replaces`",
            self.number
        )
    }

    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result() -> ResultRecord {
        serde_json::from_value(json!({
            "job": "J1", "quantity": "Z1 output voltage", "value": 10.000_012, "unit": "V",
            "standard_uncertainty": 2.0e-7, "coverage_factor": 2.0, "expanded_uncertainty": 4.0e-7,
            "budget": [{"source": "type A", "u": 1.0e-7}], "software_version": "mqttcal 0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn a_consistent_result_passes_and_inconsistent_ones_are_named() {
        result().validate().unwrap();
        let mut r = result();
        r.expanded_uncertainty = 5.0e-7;
        assert!(r
            .validate()
            .unwrap_err()
            .to_string()
            .contains("expanded_uncertainty"));
        let mut r = result();
        r.amends = Some(3);
        assert!(r.validate().unwrap_err().to_string().contains("reason"));
        let mut r = result();
        r.standard_uncertainty = -1.0;
        assert!(r.validate().is_err());
    }

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
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
