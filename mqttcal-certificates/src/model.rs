//! The data of one certificate, gathered once and rendered to every format.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a certificate is in its life (ISO/IEC 17025 §7.8): only an issued one is final;
/// every format marks the others as drafts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being prepared.
    Draft,
    /// Checked by a reviewer.
    Reviewed,
    /// Authorised by a person other than the reviewer and the one who calibrated.
    Authorised,
    /// Issued with its number: the final document.
    Issued,
}

/// Everything a calibration certificate states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateData {
    /// The certificate number (for a draft, a provisional reference).
    pub number: String,
    /// Draft, reviewed, authorised or issued.
    pub status: Status,
    /// The language of the texts, ISO 639-1 (`en`).
    pub language: String,
    /// Where the calibration was performed, ISO 3166-1 alpha-2 (`IT`).
    pub country: String,
    /// First day of the measurement, `YYYY-MM-DD`.
    pub begin: String,
    /// Last day of the measurement, `YYYY-MM-DD`.
    pub end: String,
    /// When the item was received, `YYYY-MM-DD`.
    #[serde(default)]
    pub received: Option<String>,
    /// Issue date, `YYYY-MM-DD` (issued certificates).
    #[serde(default)]
    pub issued: Option<String>,
    /// Where the measurement took place.
    pub performed_at: PerformanceLocation,
    /// The calibration laboratory.
    pub laboratory: Party,
    /// The customer.
    pub customer: Party,
    /// The item calibrated.
    pub item: Item,
    /// Who calibrated, reviewed and authorised.
    pub persons: Vec<Person>,
    /// The method or procedure.
    pub method: Method,
    /// The equipment used, with calibration due dates.
    #[serde(default)]
    pub equipment: Vec<Equipment>,
    /// The influence conditions during the measurement.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The results.
    pub results: Vec<ResultLine>,
    /// The statement of metrological traceability.
    pub traceability: String,
    /// The certificate this one replaces, if it is an amendment.
    #[serde(default)]
    pub amends: Option<Amendment>,
    /// The software that produced the certificate.
    pub software: Software,
}

/// Where a measurement took place (the DCC's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PerformanceLocation {
    /// At the laboratory.
    Laboratory,
    /// At the customer's.
    Customer,
    /// At a branch of the laboratory.
    LaboratoryBranch,
    /// At a branch of the customer.
    CustomerBranch,
    /// Elsewhere.
    Other,
}

impl PerformanceLocation {
    /// The DCC's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Laboratory => "laboratory",
            Self::Customer => "customer",
            Self::LaboratoryBranch => "laboratoryBranch",
            Self::CustomerBranch => "customerBranch",
            Self::Other => "other",
        }
    }
}

/// A laboratory or a customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Telephone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Postal address.
    pub address: Address,
    /// An accreditation or customer code.
    #[serde(default)]
    pub code: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street.
    pub street: String,
    /// House number.
    #[serde(default)]
    pub street_no: Option<String>,
    /// Postal code.
    pub post_code: String,
    /// City.
    pub city: String,
    /// Country, ISO 3166-1 alpha-2.
    pub country: String,
}

/// The item calibrated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// What it is (`Zener voltage standard`).
    pub name: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number.
    pub serial: String,
    /// The laboratory's identifier for it (equipment id).
    #[serde(default)]
    pub id: Option<String>,
}

/// A person responsible for the certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Name.
    pub name: String,
    /// Their role (`calibrated`, `reviewed`, `authorised`).
    pub role: String,
    /// Whether they sign the certificate (the authorising person).
    #[serde(default)]
    pub main_signer: bool,
}

/// The method or procedure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Method {
    /// Name (`Reverse-polarity comparison with a reference Zener`).
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Standards and documented procedures followed.
    #[serde(default)]
    pub norms: Vec<String>,
}

/// An item of equipment used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Equipment {
    /// What it is and its role (`Reference standard Z0`).
    pub name: String,
    /// The laboratory's identifier.
    pub id: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Calibration due date, `YYYY-MM-DD`.
    #[serde(default)]
    pub calibration_due: Option<String>,
}

/// An influence condition (temperature, humidity, pressure) during the measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// What (`Ambient temperature`).
    pub name: String,
    /// The value as reported, a decimal string (`23.1`).
    pub value: String,
    /// Unit (`°C`, `hPa`, `%RH`).
    pub unit: String,
    /// Half-width of the range seen, a decimal string, if reported.
    #[serde(default)]
    pub half_width: Option<String>,
}

/// One result: the value and its expanded uncertainty, as reported (rounded) decimal
/// strings, so every format carries exactly the stored digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultLine {
    /// The measurand (`Output voltage, 10 V terminals`).
    pub name: String,
    /// The value (`10.00001234`).
    pub value: String,
    /// Unit (`V`).
    pub unit: String,
    /// Expanded uncertainty U (`0.00000093`).
    pub expanded_uncertainty: String,
    /// Coverage factor k (`2.00`).
    pub coverage_factor: String,
    /// Coverage probability (`0.9545`).
    pub coverage_probability: String,
}

/// What an amendment replaces, and why (ISO/IEC 17025 §7.8.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    /// The number of the certificate replaced.
    pub replaces: String,
    /// Why.
    pub reason: String,
    /// The content hash of the certificate replaced (SHA-256, hex), as stored.
    pub content_hash: String,
}

/// The software that produced the certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
}
