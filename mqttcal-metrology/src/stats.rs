//! Type A evaluation of a series and its Allan deviation.

use serde::{Deserialize, Serialize};

use crate::error::{at_least, finite, MetrologyError, Result};

/// The Type A evaluation of n observations: their mean, experimental standard deviation,
/// the standard uncertainty of the mean and its degrees of freedom.
///
/// ```
/// use mqttcal_metrology::TypeA;
/// let a = TypeA::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(a.mean, 2.5);
/// assert_eq!(a.dof, 3.0);
/// assert!((a.u - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TypeA {
    /// The number of observations.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// The experimental standard deviation s = √(Σ(xᵢ − x̄)²/(n − 1)).
    pub s: f64,
    /// The standard uncertainty of the mean, s/√n.
    pub u: f64,
    /// Degrees of freedom, n − 1.
    pub dof: f64,
}

impl TypeA {
    /// Evaluates `values` (at least two, all finite).
    pub fn of(values: &[f64]) -> Result<Self> {
        at_least("a Type A evaluation", 2, values.len())?;
        for (i, v) in values.iter().enumerate() {
            finite(|| format!("observation {}", i + 1), *v)?;
        }
        let n = values.len();
        // About the first value, so a large common part (10 V) costs no digits.
        let origin = values[0];
        let shifted: Vec<f64> = values.iter().map(|v| v - origin).collect();
        let mean_shift = mean(&shifted);
        let ss: f64 = shifted.iter().map(|v| (v - mean_shift).powi(2)).sum();
        let s = finite(|| "standard deviation".into(), (ss / (n - 1) as f64).sqrt())?;
        let mean = finite(|| "mean".into(), origin + mean_shift)?;
        Ok(Self {
            n,
            mean,
            s,
            u: s / (n as f64).sqrt(),
            dof: (n - 1) as f64,
        })
    }
}

/// The arithmetic mean of a non-empty slice (Kahan-free: the slices here are short).
pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// The overlapping Allan deviation of a series sampled every τ₀, at τ = m·τ₀:
/// σ²(τ) = Σⱼ (ȳⱼ₊ₘ − ȳⱼ)² / (2(N − 2m + 1)), ȳⱼ the mean of m samples from j.
///
/// White noise falls as τ^(−1/2); flicker (1/f) noise stays flat: where the curve stops
/// falling, s/√n no longer describes the uncertainty of a mean.
///
/// ```
/// use mqttcal_metrology::allan_deviation;
/// let alternating: Vec<f64> = (0..100).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
/// assert!((allan_deviation(&alternating, 1).unwrap() - 2f64.sqrt()).abs() < 1e-12);
/// assert!(allan_deviation(&alternating, 2).unwrap() < 1e-12);
/// ```
pub fn allan_deviation(series: &[f64], m: usize) -> Result<f64> {
    if m == 0 {
        return Err(MetrologyError::Invalid {
            what: "averaging factor m".into(),
            problem: "must be at least 1".into(),
        });
    }
    if m > series.len().saturating_sub(1) / 2 {
        return Err(MetrologyError::TooFewPoints {
            what: "an Allan deviation at this τ",
            needed: m.saturating_mul(2).saturating_add(1),
            got: series.len(),
        });
    }
    for (i, v) in series.iter().enumerate() {
        finite(|| format!("sample {}", i + 1), *v)?;
    }
    // Running sums: the mean of m samples from j is (S[j+m] − S[j]) / m.
    // Running sums about the first sample, so a large common part costs no digits.
    let origin = series[0];
    let mut sums = Vec::with_capacity(series.len() + 1);
    sums.push(0.0);
    let mut acc = 0.0;
    for v in series {
        acc += v - origin;
        sums.push(acc);
    }
    let mf = m as f64;
    let count = series.len() - 2 * m + 1;
    let total: f64 = (0..count)
        .map(|j| {
            let a = (sums[j + m] - sums[j]) / mf;
            let b = (sums[j + 2 * m] - sums[j + m]) / mf;
            (b - a).powi(2)
        })
        .sum();
    finite(
        || "Allan deviation".into(),
        (total / (2.0 * count as f64)).sqrt(),
    )
}

/// One point of an Allan deviation curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AllanPoint {
    /// The averaging time τ = m·τ₀.
    pub tau: f64,
    /// The number of samples averaged.
    pub m: usize,
    /// σ(τ).
    pub deviation: f64,
}

/// The Allan deviation at m = 1, 2, 4, … while at least `min_averages` (≥ 3) means of m
/// samples fit in the series, for samples taken every `tau0`.
pub fn allan_curve(series: &[f64], tau0: f64, min_averages: usize) -> Result<Vec<AllanPoint>> {
    finite(|| "τ₀".into(), tau0)?;
    if tau0 <= 0.0 {
        return Err(MetrologyError::Invalid {
            what: "τ₀".into(),
            problem: format!("{tau0} is not positive"),
        });
    }
    let min_averages = min_averages.max(3);
    at_least("an Allan deviation curve", min_averages, series.len())?;
    let mut out = Vec::new();
    let mut m = 1;
    while series.len() / m >= min_averages {
        out.push(AllanPoint {
            tau: m as f64 * tau0,
            m,
            deviation: allan_deviation(series, m)?,
        });
        m *= 2;
    }
    Ok(out)
}
