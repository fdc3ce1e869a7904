//! The equipment register: standards and instruments, and each item's calibration history.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::invalid::{finite, invalid, not_empty, Invalid};
use crate::LabMessage;

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
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "standard" => Ok(Self::Standard),
            "instrument" => Ok(Self::Instrument),
            other => Err(invalid(format!("unknown equipment kind `{other}`"))),
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

/// The last second of 9999-12-31 UTC: the latest date a record may state.
const LAST_SECOND: f64 = 253_402_300_799.0;

impl Equipment {
    /// Checks the record before it is stored.
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("id", &self.id)?;
        for (name, v) in [
            ("nominal_value", self.nominal_value),
            ("calibration_due", self.calibration_due),
            ("checked_in", self.checked_in),
            ("checked_out", self.checked_out),
        ] {
            if let Some(x) = v {
                finite(name, x)?;
                if name != "nominal_value" && !(0.0..=LAST_SECOND).contains(&x) {
                    return Err(invalid(format!(
                        "`{name}` must be a time from 1970 to 9999 (seconds since the Unix epoch)"
                    )));
                }
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
    pub fn validate(&self) -> Result<(), Invalid> {
        not_empty("equipment", &self.equipment)?;
        not_empty("unit", &self.unit)?;
        finite("calibrated_at", self.calibrated_at)?;
        if !(0.0..=LAST_SECOND).contains(&self.calibrated_at) {
            return Err(invalid(
                "`calibrated_at` must be a time from 1970 to 9999 (seconds since the Unix epoch)",
            ));
        }
        finite("value", self.value)?;
        finite("uncertainty", self.uncertainty)?;
        if self.uncertainty <= 0.0 {
            return Err(invalid(
                "`uncertainty` must be positive: a calibration states its expanded uncertainty",
            ));
        }
        if !(self.coverage_factor.is_finite() && self.coverage_factor > 0.0) {
            return Err(invalid("`coverage_factor` must be positive"));
        }
        Ok(())
    }

    /// Why a store refuses the record for want of its item.
    pub fn unknown_equipment(&self) -> String {
        format!(
            "`{}` is not in the equipment register: register it first",
            self.equipment
        )
    }
}

impl LabMessage for Equipment {
    const NAME: &'static str = "equipment";
}

impl LabMessage for CalibrationRecord {
    const NAME: &'static str = "calibration";
}
