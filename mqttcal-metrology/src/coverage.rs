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
    /// asked, at least 1.
    pub fn dof_used(&self, dof: Option<f64>) -> Result<Option<f64>> {
        match dof {
            None => Ok(None),
            Some(nu) => {
                finite(|| "degrees of freedom".into(), nu)?;
                if nu <= 0.0 {
                    return Err(MetrologyError::Invalid {
                        what: "degrees of freedom".into(),
                        problem: format!("{nu} is not positive"),
                    });
                }
                Ok(Some(if self.truncate_dof {
                    nu.floor().max(1.0)
                } else {
                    nu
                }))
            }
        }
    }

    /// The coverage factor k = t_p(ν) for degrees of freedom `dof` (`None`: infinite, the
    /// normal distribution's quantile).
    pub fn factor(&self, dof: Option<f64>) -> Result<f64> {
        self.check()?;
        let nu = self.dof_used(dof)?;
        Ok(central_quantile(self.probability, nu))
    }
}
