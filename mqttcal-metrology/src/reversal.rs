//! Polarity reversal and differential (series-opposition) estimators.
//!
//! A reading taken with the standard connected at polarity s = ±1 is r = s·V + E, E the
//! offsets and thermal EMFs after the reversal point. Reversing cancels E; the sequence of
//! polarities + − − + at equal spacing also cancels E drifting linearly in time. With any pattern and
//! spacing, a least-squares fit of rᵢ = sᵢV + E₀ + e·(tᵢ − t̄) on the acquisition times does
//! the same.

use serde::{Deserialize, Serialize};

use crate::error::{at_least, finite, MetrologyError, Result};
use crate::linalg::{apply, invert};
use crate::stats::{mean, TypeA};

/// The polarity a reading was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    /// Normal connection (s = +1).
    Positive,
    /// Reversed (s = −1).
    Negative,
}

impl Polarity {
    /// s = ±1.
    pub fn sign(self) -> f64 {
        match self {
            Self::Positive => 1.0,
            Self::Negative => -1.0,
        }
    }
}

/// V of one + − − + group at equal spacing: (r₁ − r₂ − r₃ + r₄)/4.
///
/// ```
/// use mqttcal_metrology::reversal_group;
/// // V = 10, an offset of 3 µV drifting by 1 µV per reading.
/// let r = [10.0 + 3e-6, -10.0 + 4e-6, -10.0 + 5e-6, 10.0 + 6e-6];
/// assert!((reversal_group(r).unwrap() - 10.0).abs() < 1e-12);
/// ```
pub fn reversal_group(readings: [f64; 4]) -> Result<f64> {
    for (i, r) in readings.iter().enumerate() {
        finite(|| format!("reading {}", i + 1), *r)?;
    }
    let [r1, r2, r3, r4] = readings;
    // Each quarter first, so readings near the largest float do not overflow the sum.
    finite(
        || "reversal estimate".into(),
        r1 / 4.0 - r2 / 4.0 - r3 / 4.0 + r4 / 4.0,
    )
}

/// One reading of a reversal fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PolarityReading {
    /// Its acquisition time (any unit, the same for all).
    pub t: f64,
    /// The polarity.
    pub polarity: Polarity,
    /// The reading.
    pub value: f64,
}

/// The least-squares fit rᵢ = sᵢV + E₀ + e·(tᵢ − t̄).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReversalFit {
    /// The number of readings.
    pub n: usize,
    /// The estimate of V.
    pub value: f64,
    /// The offset E₀ at the mean time t̄.
    pub offset: f64,
    /// The offset's drift per time unit.
    pub drift: f64,
    /// The mean acquisition time t̄.
    pub t_mean: f64,
    /// The residual standard deviation, √(Σ residual²/(n − 3)); `None` with 3 readings.
    pub residual_sd: Option<f64>,
    /// The standard uncertainty of V from the residuals; `None` with 3 readings.
    pub u: Option<f64>,
    /// Degrees of freedom, n − 3.
    pub dof: f64,
}

/// Fits V, the offset and its linear drift to readings at any polarity pattern and spacing
/// (at least three, both polarities, at least two distinct times).
///
/// ```
/// use mqttcal_metrology::{fit_reversal, Polarity::*, PolarityReading};
/// let (v, e0, e) = (1.018, 2e-6, 1e-7);
/// let readings: Vec<PolarityReading> = [(0.0, Positive), (1.5, Negative), (2.0, Negative), (4.5, Positive), (5.0, Negative)]
///     .into_iter()
///     .map(|(t, p)| PolarityReading { t, polarity: p, value: p.sign() * v + e0 + e * t })
///     .collect();
/// let fit = fit_reversal(&readings).unwrap();
/// assert!((fit.value - v).abs() < 1e-13);
/// assert!((fit.drift - e).abs() < 1e-13);
/// ```
pub fn fit_reversal(readings: &[PolarityReading]) -> Result<ReversalFit> {
    const WHAT: &str = "a reversal fit";
    at_least(WHAT, 3, readings.len())?;
    for (i, r) in readings.iter().enumerate() {
        finite(|| format!("time of reading {}", i + 1), r.t)?;
        finite(|| format!("reading {}", i + 1), r.value)?;
    }
    let both = readings.iter().any(|r| r.polarity == Polarity::Positive)
        && readings.iter().any(|r| r.polarity == Polarity::Negative);
    if !both {
        return Err(MetrologyError::Degenerate {
            what: WHAT,
            why: "every reading has the same polarity",
        });
    }
    let times: Vec<f64> = readings.iter().map(|r| r.t).collect();
    let t_mean = mean(&times);
    let rows: Vec<([f64; 3], f64)> = readings
        .iter()
        .map(|r| ([r.polarity.sign(), 1.0, r.t - t_mean], r.value))
        .collect();
    let mut xtx = [[0.0; 3]; 3];
    let mut xty = [0.0; 3];
    for (x, y) in &rows {
        for i in 0..3 {
            xty[i] += x[i] * y;
            for j in 0..3 {
                xtx[i][j] += x[i] * x[j];
            }
        }
    }
    let cov = invert(xtx).ok_or(MetrologyError::Degenerate {
        what: WHAT,
        why: "polarity, offset and drift cannot be told apart (readings at one time, or a pattern that follows the time)",
    })?;
    let beta = apply(&cov, &xty);
    for (b, what) in beta.iter().zip(["V", "offset", "drift"]) {
        finite(|| format!("fitted {what}"), *b)?;
    }
    let n = readings.len();
    let dof = (n - 3) as f64;
    let (residual_sd, u) = if n > 3 {
        let ss: f64 = rows
            .iter()
            .map(|(x, y)| (y - (beta[0] * x[0] + beta[1] * x[1] + beta[2] * x[2])).powi(2))
            .sum();
        let s2 = ss / dof;
        (Some(s2.sqrt()), Some((s2 * cov[0][0]).sqrt()))
    } else {
        (None, None)
    };
    Ok(ReversalFit {
        n,
        value: beta[0],
        offset: beta[1],
        drift: beta[2],
        t_mean,
        residual_sd,
        u,
        dof,
    })
}

/// The result of a differential (series-opposition) measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Differential {
    /// Vx = V̂ref + mean(d).
    pub value: f64,
    /// The Type A evaluation of the differences d = Vx − Vref (one per reversal group).
    pub differences: TypeA,
}

/// Vx from the reference's predicted value at the time of the measurement and the measured
/// differences d = Vx − Vref (one per reversal group, at least two).
///
/// ```
/// use mqttcal_metrology::differential;
/// let r = differential(10.000_012, &[-1.2e-6, -1.4e-6, -1.3e-6]).unwrap();
/// assert!((r.value - (10.000_012 - 1.3e-6)).abs() < 1e-12);
/// assert_eq!(r.differences.dof, 2.0);
/// ```
pub fn differential(reference: f64, differences: &[f64]) -> Result<Differential> {
    finite(|| "reference value".into(), reference)?;
    let d = TypeA::of(differences)?;
    Ok(Differential {
        value: reference + d.mean,
        differences: d,
    })
}
