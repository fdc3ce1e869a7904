//! A result of a calibration job with its uncertainty budget (GUM), as cald stores it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::invalid::{finite, invalid, not_empty, Invalid};
use crate::LabMessage;

/// How an uncertainty was evaluated (GUM 4.2 and 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Evaluation {
    /// Type A: by statistical analysis of a series of observations.
    A,
    /// Type B: by other means (certificates, specifications, experience).
    B,
}

/// One line of an uncertainty budget: an input quantity x_i with its standard uncertainty
/// u(x_i) and sensitivity coefficient c_i, contributing |c_i| u(x_i) to the combined
/// standard uncertainty.
///
/// Fields this type does not name are kept (in `extra`), so a budget written by another
/// tool reads back whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetEntry {
    /// The input quantity, e.g. `reference (drift prediction)`, `type A`, `DMM gain`.
    pub source: String,
    /// Standard uncertainty u(x_i), in the input's unit.
    pub u: f64,
    /// Sensitivity coefficient c_i (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensitivity: Option<f64>,
    /// The estimate x_i, in `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Unit of `value` and `u`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Type A or B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Degrees of freedom ν_i (absent: infinite, as for most Type B inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dof: Option<f64>,
    /// Probability distribution of a Type B input, e.g. `normal`, `rectangular`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Any other field, kept as it came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl BudgetEntry {
    /// An entry `source` with standard uncertainty `u` and nothing else.
    pub fn new(source: impl Into<String>, u: f64) -> Self {
        Self {
            source: source.into(),
            u,
            sensitivity: None,
            value: None,
            unit: None,
            evaluation: None,
            dof: None,
            distribution: None,
            extra: Map::new(),
        }
    }

    /// The contribution |c_i| u(x_i) to the combined standard uncertainty.
    pub fn contribution(&self) -> f64 {
        self.sensitivity.unwrap_or(1.0).abs() * self.u
    }

    /// Refuses an empty source, a negative or non-finite u or c_i, a non-positive ν_i.
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("source", &self.source)?;
        finite("u", self.u)?;
        if self.u < 0.0 {
            return Err(invalid("`u` must not be negative"));
        }
        if let Some(c) = self.sensitivity {
            finite("sensitivity", c)?;
        }
        if let Some(v) = self.value {
            finite("value", v)?;
        }
        if self.dof.is_some_and(|d| d.is_nan() || d <= 0.0) {
            return Err(invalid("`dof` must be positive"));
        }
        Ok(())
    }
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
    /// The uncertainty budget: one entry per input quantity.
    pub budget: Vec<BudgetEntry>,
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
    /// The equipment the result relies on (reference standards, instruments), each with
    /// its serial and calibration due date (ISO/IEC 17025 §7.5, §7.8.2.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equipment: Vec<EquipmentUsed>,
    /// The lab conditions during the measurement (e.g. min, max and mean temperature,
    /// humidity, pressure), as the producer summarised them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Value>,
}

/// An item of equipment a result relies on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EquipmentUsed {
    /// What it did, e.g. `reference`, `dmm`, `scanner-x`.
    pub role: String,
    /// Its equipment id in the register.
    pub id: String,
    /// Its serial number as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Its calibration due date, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_due: Option<f64>,
    /// What the instrument reported of itself (`*IDN?`, `ID?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl ResultRecord {
    /// Why a store refuses a correction for want of the result it amends.
    pub fn unknown_amended(&self) -> String {
        format!(
            "`amends`: there is no result {}",
            self.amends.unwrap_or_default()
        )
    }

    /// Checks the record before it is stored: finite numbers, u ≥ 0, k > 0, U = k u (to
    /// 1 part in 10⁶), a reason with every correction.
    pub fn validate(&self) -> Result<(), Invalid> {
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
        for (i, entry) in self.budget.iter().enumerate() {
            entry
                .validate()
                .map_err(|e| invalid(format!("`budget[{i}]`: {e}")))?;
        }
        if self.amends.is_some() && self.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(invalid("a correction (`amends`) needs a `reason`"));
        }
        Ok(())
    }
}

impl LabMessage for ResultRecord {
    const NAME: &'static str = "result";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result() -> ResultRecord {
        serde_json::from_value(json!({
            "job": "J1", "quantity": "Z1 output voltage", "value": 10.000_012, "unit": "V",
            "standard_uncertainty": 2.0e-7, "coverage_factor": 2.0, "expanded_uncertainty": 4.0e-7,
            "budget": [{"source": "type A", "u": 1.0e-7, "evaluation": "A", "dof": 9.0},
                       {"source": "reference", "u": 1.7e-7, "note": "kept"}],
            "software_version": "mqttcal 0.1.0"
        }))
        .unwrap()
    }

    #[test]
    fn a_consistent_result_passes_and_inconsistent_ones_are_named() {
        result().validate().unwrap();
        let mut r = result();
        r.expanded_uncertainty = 5.0e-7;
        assert!(r.validate().unwrap_err().0.contains("expanded_uncertainty"));
        let mut r = result();
        r.amends = Some(3);
        assert!(r.validate().unwrap_err().0.contains("reason"));
        let mut r = result();
        r.standard_uncertainty = -1.0;
        assert_eq!(
            r.validate().unwrap_err().0,
            "`standard_uncertainty` must not be negative"
        );
        let mut r = result();
        r.budget[1].u = f64::NAN;
        assert_eq!(
            r.validate().unwrap_err().0,
            "`budget[1]`: `u` must be a finite number"
        );
    }

    #[test]
    fn unknown_budget_fields_are_kept() {
        let r = result();
        assert_eq!(r.budget[1].extra["note"], "kept");
        assert_eq!(r.budget[0].evaluation, Some(Evaluation::A));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["budget"][1]["note"], "kept");
        assert!((r.budget[0].contribution() - 1.0e-7).abs() < 1e-20);
    }
}
