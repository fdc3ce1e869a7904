//! Parameters and results of cald's capabilities.

use std::sync::atomic::Ordering;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::procedure::Procedure;
use super::Job;

/// Parameters of `checkin`: an incoming standard.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckIn {
    /// Its equipment id, also its channel in labd, e.g. `Z1`.
    pub id: String,
    /// The customer who owns it.
    pub customer: String,
    /// Manufacturer.
    #[serde(default)]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default)]
    pub model: Option<String>,
    /// Serial number.
    pub serial: String,
    /// Nominal value of the output to calibrate, V.
    pub nominal_value: f64,
    /// A description.
    #[serde(default)]
    pub description: Option<String>,
    /// The calibration the customer asked for, planned as a job at once (as `start` would).
    #[serde(default)]
    pub calibration: Option<Requested>,
}

/// A calibration asked for at check-in.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requested {
    /// The procedure to follow.
    #[schemars(example = example_procedure())]
    pub procedure: Procedure,
    /// The job's id (default: `J-` and the time).
    #[serde(default)]
    pub job: Option<String>,
    /// Its measurement slot, Unix seconds (default: now).
    #[serde(default)]
    pub at: Option<f64>,
}

/// The reply of `checkin`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CheckedIn {
    /// The item's equipment id.
    pub id: String,
    /// The job planned for the calibration asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Started>,
}

/// An item of the equipment register.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemId {
    /// Its equipment id.
    pub id: String,
}

/// Parameters of `start`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The item to calibrate (checked in, and a channel of labd).
    pub item: String,
    /// The procedure to follow.
    #[schemars(example = example_procedure())]
    pub procedure: Procedure,
    /// The job's id (default: `J-` and the time).
    #[serde(default)]
    pub job: Option<String>,
    /// When to start, Unix seconds (default: now): the job's measurement slot.
    #[serde(default)]
    pub at: Option<f64>,
    /// Who calibrates: kept in the job's record (`body.operator`), so that they may not
    /// review or authorise its certificate (ctrld names the caller).
    #[serde(default)]
    pub operator: Option<String>,
}

/// The reply of `start`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Started {
    /// The job's id.
    pub job: String,
    /// The hash its procedure is stored under.
    pub config_hash: String,
    /// `measure` calls it makes.
    pub steps: u32,
    /// When it starts, Unix seconds.
    pub at: f64,
}

/// Selects a job.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobId {
    /// The job's id.
    pub job: String,
}

/// A job as `jobs` and `cancel` show it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct JobState {
    /// The job's id.
    pub job: String,
    /// The item under calibration.
    pub item: String,
    /// The procedure's name.
    pub procedure: String,
    /// When it starts (or started), Unix seconds.
    pub at: f64,
    /// Steps done.
    pub i: u32,
    /// Steps in all.
    pub n: u32,
    /// Whether a cancel was asked.
    pub cancelling: bool,
}

impl JobState {
    pub(super) fn of(j: &Job) -> Self {
        Self {
            job: j.id.clone(),
            item: j.item.clone(),
            procedure: j.procedure.name.clone(),
            at: j.at,
            i: j.done.load(Ordering::Relaxed),
            n: j.procedure.steps(),
            cancelling: j.cancel.load(Ordering::Relaxed),
        }
    }
}

/// A procedure for a 10 V Zener against the reference Z2: four + − − + groups of five
/// readings at 10 NPLC (the example the schema carries, for forms made from it).
fn example_procedure() -> serde_json::Value {
    serde_json::json!({"name": "DCV-10V-DIFF", "reference": "Z2", "groups": 4, "readings": 5,
                       "NPLC": 10, "range": 0.1, "settle_s": 1,
                       "limits": {"temperature": [21.0, 25.0], "humidity": [20.0, 70.0]}})
}
