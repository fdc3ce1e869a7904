//! The metrology of mqttcal, with no I/O and no MQTT: call it from a node, a script or a
//! notebook-style tool.
//!
//! - [`reversal_group`], [`fit_reversal`]: polarity reversal (+ − − + groups, or any
//!   pattern and spacing by least squares on the acquisition times);
//!   [`differential`]: series opposition against a reference.
//! - [`TypeA`], [`allan_deviation`], [`allan_curve`]: Type A evaluation and the Allan
//!   deviation that tells whether s/√n can be trusted (Zener noise is partly 1/f).
//! - [`DriftFit`]: the drift of a reference from its calibration history (weighted least
//!   squares, Birge-ratio scaling, prediction at a date with the slope–intercept
//!   covariance).
//! - [`Budget`]: a GUM budget (JCGM 100:2008): combined standard uncertainty with
//!   correlations, Welch–Satterthwaite ν_eff, k from Student's t for a chosen coverage
//!   probability ([`Coverage`], 95.45 % by default), U to two significant digits
//!   ([`Reported`]).
//!
//! Every function refuses bad input (too few points, a negative uncertainty, a NaN) with a
//! [`MetrologyError`] that says which value, never a NaN result.
//!
//! ```
//! use mqttcal_metrology::*;
//!
//! // A 10 V Zener against a reference: five + − − + groups of differences.
//! let groups = [
//!     [-1.21e-6, 1.30e-6, 1.33e-6, -1.22e-6],
//!     [-1.25e-6, 1.26e-6, 1.29e-6, -1.24e-6],
//!     [-1.19e-6, 1.31e-6, 1.30e-6, -1.20e-6],
//!     [-1.23e-6, 1.27e-6, 1.28e-6, -1.26e-6],
//!     [-1.22e-6, 1.29e-6, 1.31e-6, -1.21e-6],
//! ];
//! let d: Vec<f64> = groups.iter().map(|g| reversal_group(*g)).collect::<Result<_>>()?;
//!
//! // The reference's value today, from its history (dates in days).
//! let history = [(0.0, 10.000_010_0), (365.0, 10.000_010_4), (730.0, 10.000_010_9), (1095.0, 10.000_011_2)]
//!     .map(|(t, value)| HistoryPoint { t, value, u: 0.1e-6 });
//! let reference = DriftFit::fit(&history, 0.05e-6)?.predict(1200.0)?;
//!
//! let x = differential(reference.value, &d)?;
//! let budget = Budget::new()
//!     .with(Input::type_b("reference", reference.value, reference.u))
//!     .with(Input::type_a("difference", x.differences.mean, x.differences.u, x.differences.dof))
//!     .with(Input::type_b("dmm_gain", 0.0, 20e-6).sensitivity(x.differences.mean));
//! let e = budget.evaluate(&Coverage::default())?;
//! let report = e.report(x.value, Rounding::Nearest)?;
//! println!("Vx = {} V, U = {} V (k = {:.2})", report.value_text(), report.expanded_text(), e.k);
//! assert!(e.combined_u > 0.05e-6 && e.combined_u < 0.2e-6);
//! # Ok::<(), MetrologyError>(())
//! ```

mod budget;
mod coverage;
mod drift;
mod error;
mod linalg;
mod reversal;
mod rounding;
mod special;
mod stats;

pub use budget::{
    dof_from_reliability, Budget, Combined, Contribution, Correlation, Evaluation, Input, Kind,
};
pub use coverage::Coverage;
pub use drift::{DriftFit, HistoryPoint, Prediction};
pub use error::{MetrologyError, Result};
pub use reversal::{
    differential, fit_reversal, reversal_group, Differential, Polarity, PolarityReading,
    ReversalFit,
};
pub use rounding::{Reported, Rounding};
pub use stats::{allan_curve, allan_deviation, AllanPoint, TypeA};
