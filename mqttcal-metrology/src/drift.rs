//! The drift of a reference standard from its calibration history: a weighted
//! least-squares line, scaled by the Birge ratio, and its prediction at a date.

use serde::{Deserialize, Serialize};

use crate::error::{at_least, finite, non_negative, MetrologyError, Result};
use crate::linalg::{apply, invert};
use crate::stats::mean;

/// One calibration of the reference: when, the value found, and the uncorrelated part of
/// its standard uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// The date, in any unit (days are usual), the same for all points and predictions.
    pub t: f64,
    /// The value found.
    pub value: f64,
    /// Its standard uncertainty, without the part common to every point (give that once
    /// as [`DriftFit::fit`]'s `common_u`). Must be positive: it is the point's weight.
    pub u: f64,
}

/// V(t) = a + b·(t − t̄), fitted to a history by weighted least squares (weights 1/uᵢ²),
/// t̄ the mean date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DriftFit {
    /// The number of points.
    pub n: usize,
    /// The mean date t̄ the line is centred on.
    pub t_mean: f64,
    /// The value at t̄.
    pub intercept: f64,
    /// The drift per time unit.
    pub slope: f64,
    /// u²(a).
    pub var_intercept: f64,
    /// u²(b).
    pub var_slope: f64,
    /// u(a, b).
    pub covariance: f64,
    /// The Birge ratio √(χ²/(n − 2)); `None` with two points.
    pub birge_ratio: Option<f64>,
    /// Whether the variances were scaled by the Birge ratio squared (it exceeded 1).
    pub scaled: bool,
    /// The residual standard deviation about the line, √(Σ(Vᵢ − V(tᵢ))²/(n − 2)); `None`
    /// with two points.
    pub residual_sd: Option<f64>,
    /// The systematic part common to every point, added once to each prediction.
    pub common_u: f64,
}

/// A predicted value of the reference and its standard uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The date.
    pub t: f64,
    /// V̂(t).
    pub value: f64,
    /// The line's part: √(u²(a) + (t − t̄)²u²(b) + 2(t − t̄)u(a, b)).
    pub u_line: f64,
    /// The whole standard uncertainty (the line's, the common part and, for a new value,
    /// the residual scatter).
    pub u: f64,
    /// Effective degrees of freedom of `u` (Welch–Satterthwaite over its parts). Only
    /// what is estimated from the scatter about the line has finite degrees of freedom,
    /// n − 2: the line's part when the Birge ratio scaled it, and the residual scatter of
    /// [`DriftFit::predict_new`]. Otherwise (two points, or points consistent with their
    /// stated uncertainties) `None`: as well known as those uncertainties.
    pub dof: Option<f64>,
}

impl DriftFit {
    /// Fits `points` (at least two, at two dates at least); `common_u` is the standard
    /// uncertainty shared by every point (e.g. the calibrating laboratory's own reference),
    /// 0 if none.
    ///
    /// ```
    /// use mqttcal_metrology::{DriftFit, HistoryPoint};
    /// let history: Vec<HistoryPoint> = (0..6)
    ///     .map(|i| HistoryPoint { t: 365.0 * i as f64, value: 10.0 + 1e-9 * 365.0 * i as f64, u: 0.1e-6 })
    ///     .collect();
    /// let fit = DriftFit::fit(&history, 0.05e-6).unwrap();
    /// let p = fit.predict(6.0 * 365.0).unwrap();
    /// assert!((p.value - (10.0 + 1e-9 * 6.0 * 365.0)).abs() < 1e-12);
    /// assert!(p.u > 0.05e-6 && p.u < 0.2e-6);
    /// ```
    pub fn fit(points: &[HistoryPoint], common_u: f64) -> Result<Self> {
        const WHAT: &str = "a drift fit";
        at_least(WHAT, 2, points.len())?;
        non_negative(|| "common uncertainty".into(), common_u)?;
        for (i, p) in points.iter().enumerate() {
            finite(|| format!("date of point {}", i + 1), p.t)?;
            finite(|| format!("value of point {}", i + 1), p.value)?;
            non_negative(|| format!("uncertainty of point {}", i + 1), p.u)?;
            let w = 1.0 / (p.u * p.u);
            if p.u == 0.0 || !w.is_finite() || w == 0.0 {
                return Err(MetrologyError::Invalid {
                    what: format!("uncertainty of point {}", i + 1),
                    problem: format!(
                        "{}: a point's weight is 1/u², which must be a positive finite number",
                        p.u
                    ),
                });
            }
        }
        let times: Vec<f64> = points.iter().map(|p| p.t).collect();
        let t_mean = mean(&times);
        let mut normal = [[0.0; 2]; 2];
        let mut rhs = [0.0; 2];
        for p in points {
            let w = 1.0 / (p.u * p.u);
            let x = [1.0, p.t - t_mean];
            for i in 0..2 {
                rhs[i] += w * x[i] * p.value;
                for j in 0..2 {
                    normal[i][j] += w * x[i] * x[j];
                }
            }
        }
        let cov = invert(normal).ok_or(MetrologyError::Degenerate {
            what: WHAT,
            why: "every point has the same date",
        })?;
        let [a, b] = apply(&cov, &rhs);
        let n = points.len();
        let residuals: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.value - (a + b * (p.t - t_mean)), p.u))
            .collect();
        let (birge_ratio, residual_sd) = if n > 2 {
            let dof = (n - 2) as f64;
            let chi2: f64 = residuals.iter().map(|(r, u)| (r / u).powi(2)).sum();
            let ss: f64 = residuals.iter().map(|(r, _)| r * r).sum();
            (Some((chi2 / dof).sqrt()), Some((ss / dof).sqrt()))
        } else {
            (None, None)
        };
        let scale = birge_ratio.filter(|r| *r > 1.0).map_or(1.0, |r| r * r);
        let fitted = [
            a,
            b,
            cov[0][0] * scale,
            cov[1][1] * scale,
            cov[0][1] * scale,
            birge_ratio.unwrap_or(0.0),
            residual_sd.unwrap_or(0.0),
        ];
        if fitted.iter().any(|x| !x.is_finite()) {
            return Err(MetrologyError::Degenerate {
                what: WHAT,
                why: "the values or dates are too large to fit in floating point",
            });
        }
        Ok(Self {
            n,
            t_mean,
            intercept: a,
            slope: b,
            var_intercept: cov[0][0] * scale,
            var_slope: cov[1][1] * scale,
            covariance: cov[0][1] * scale,
            birge_ratio,
            scaled: scale > 1.0,
            residual_sd,
            common_u,
        })
    }

    fn line_at(&self, t: f64) -> Result<(f64, f64)> {
        finite(|| "prediction date".into(), t)?;
        let dt = t - self.t_mean;
        let var = self.var_intercept + dt * dt * self.var_slope + 2.0 * dt * self.covariance;
        let value = self.intercept + self.slope * dt;
        if !(var.is_finite() && value.is_finite()) {
            return Err(MetrologyError::Invalid {
                what: "prediction date".into(),
                problem: format!("{t} is too far from the history to predict in floating point"),
            });
        }
        // The quadratic form of a positive matrix: negative only by rounding.
        Ok((value, var.max(0.0)))
    }

    /// The value of the line at `t` (the reference's expected value), with the line's
    /// uncertainty and the common part.
    ///
    /// With the Birge ratio at or below 1 (or two points) the line's variance comes from
    /// the points' stated uncertainties and `dof` is `None`; scaled by the Birge ratio, it
    /// is estimated from the scatter, with n − 2 degrees of freedom, and `dof` is that of
    /// the whole `u` (the common part counting as exactly known).
    pub fn predict(&self, t: f64) -> Result<Prediction> {
        let (value, var) = self.line_at(t)?;
        let u2 = var + self.common_u.powi(2);
        Ok(Prediction {
            t,
            value,
            u_line: var.sqrt(),
            u: u2.sqrt(),
            dof: self.scatter_dof().map(|nu| effective_dof(u2, &[(var, nu)])),
        })
    }

    /// n − 2 when the fit estimates anything from the scatter about the line.
    fn scatter_dof(&self) -> Option<f64> {
        (self.n > 2 && self.scaled).then(|| (self.n - 2) as f64)
    }

    /// A new value at `t`: [`DriftFit::predict`] plus the residual scatter about the line
    /// (the reference's own instability), when there are more than two points. With a
    /// Birge ratio below 1 the scatter is already within the points' stated uncertainties,
    /// and this is conservative.
    pub fn predict_new(&self, t: f64) -> Result<Prediction> {
        let mut p = self.predict(t)?;
        let Some(scatter) = self.residual_sd else {
            return Ok(p);
        };
        let nu = (self.n - 2) as f64;
        let s2 = scatter * scatter;
        let u2 = p.u * p.u + s2;
        let mut estimated = vec![(s2, nu)];
        if let Some(line_nu) = self.scatter_dof() {
            estimated.push((p.u_line.powi(2), line_nu));
        }
        p.u = u2.sqrt();
        p.dof = Some(effective_dof(u2, &estimated));
        Ok(p)
    }
}

/// Welch–Satterthwaite: the degrees of freedom of a variance `total` of which the parts
/// `(variance, dof)` were estimated (the rest exactly known); infinite parts count nothing.
fn effective_dof(total: f64, estimated: &[(f64, f64)]) -> f64 {
    let denominator: f64 = estimated.iter().map(|(v, nu)| v * v / nu).sum();
    if denominator > 0.0 {
        total * total / denominator
    } else {
        f64::INFINITY
    }
}
