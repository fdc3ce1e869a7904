//! Coverage factors: Student's t at the effective degrees of freedom, for a chosen coverage
//! probability.

use serde::{Deserialize, Serialize};

use crate::error::{finite, MetrologyError, Result};
use crate::special::central_quantile;

/// The coverage probability of an expanded uncertainty, and how the degrees of freedom are
/// used.
///
/// ```
/// use mqttcal_metrology::Coverage;
/// // The default: 95.45 %, ν_eff as computed.
/// let k = Coverage::default().factor(None).unwrap();
/// assert!((k - 2.0).abs() < 1e-5);
/// // 99 % at 16 degrees of freedom, as in JCGM 100:2008 H.1.
/// let k = Coverage::probability(0.99).unwrap().factor(Some(16.0)).unwrap();
/// assert!((k - 2.92).abs() < 0.005);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// The coverage probability, between 0 and 1 (default 0.9545).
    pub probability: f64,
    /// Truncate ν_eff to the next lower integer before looking up t (JCGM 100:2008 G.4.1
    /// and H.1.6 do; the default uses ν_eff as it is).
    pub truncate_dof: bool,
}

impl Default for Coverage {
    fn default() -> Self {
        Self {
            probability: 0.9545,
            truncate_dof: false,
        }
    }
}

impl Coverage {
    /// Coverage probability `p` (0 < p < 1), ν_eff not truncated.
    pub fn probability(p: f64) -> Result<Self> {
        let c = Self {
            probability: p,
            ..Self::default()
        };
        c.check()?;
        Ok(c)
    }

    /// The same, with ν_eff truncated to an integer as the GUM's tables need.
    #[must_use]
    pub fn truncated(mut self) -> Self {
        self.truncate_dof = true;
        self
    }

    fn check(&self) -> Result<()> {
        finite(|| "coverage probability".into(), self.probability)?;
        if !(self.probability > 0.0 && self.probability < 1.0) {
            return Err(MetrologyError::Invalid {
                what: "coverage probability".into(),
                problem: format!("{} is not between 0 and 1", self.probability),
            });
        }
        Ok(())
    }

    /// The degrees of freedom t is looked up at: `dof` (`None`: infinite), truncated if
    /// asked. Fewer than one degree of freedom is refused: t grows without useful bound
    /// there (at 95.45 %, 14 at ν = 1, 9,000 at ν = 0.3), and an effective ν that small
    /// says the budget is dominated by an input nobody knows (or by correlations that cancel
    /// its terms).
    pub fn dof_used(&self, dof: Option<f64>) -> Result<Option<f64>> {
        match dof {
            None => Ok(None),
            Some(nu) => {
                finite(|| "degrees of freedom".into(), nu)?;
                if nu < 1.0 {
                    return Err(MetrologyError::Invalid {
                        what: "degrees of freedom".into(),
                        problem: format!(
                            "{nu} is fewer than 1: no meaningful coverage factor exists"
                        ),
                    });
                }
                Ok(Some(if self.truncate_dof { nu.floor() } else { nu }))
            }
        }
    }

    /// The coverage factor k = t_p(ν) for degrees of freedom `dof` (`None`: infinite, the
    /// normal distribution's quantile).
    pub fn factor(&self, dof: Option<f64>) -> Result<f64> {
        self.check()?;
        let nu = self.dof_used(dof)?;
        central_quantile(self.probability, nu)
            .filter(|k| k.is_finite())
            .ok_or_else(|| MetrologyError::Invalid {
                what: "coverage factor".into(),
                problem: format!(
                    "t for p = {} at {} degrees of freedom is beyond reach",
                    self.probability,
                    nu.map_or("infinite".into(), |n| n.to_string())
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewer_than_one_degree_of_freedom_is_refused() {
        let c = Coverage::default();
        for nu in [0.99, 0.3, f64::MIN_POSITIVE, 0.0, -1.0, f64::NAN] {
            assert!(c.factor(Some(nu)).is_err(), "ν {nu}");
        }
        assert!(c.truncated().factor(Some(1.5)).is_ok());
        assert_eq!(c.truncated().dof_used(Some(1.5)).unwrap(), Some(1.0));
        // Huge ν_eff (a tiny Type A next to an exactly known Type B) is the normal k.
        let k = c.factor(Some(9e20)).unwrap();
        assert!((k - c.factor(None).unwrap()).abs() < 1e-12, "{k}");
    }
}
