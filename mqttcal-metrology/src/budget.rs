//! A GUM uncertainty budget: inputs with their standard uncertainties, sensitivity
//! coefficients and degrees of freedom, correlations, the combined standard uncertainty,
//! Welch–Satterthwaite's effective degrees of freedom and the expanded uncertainty.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::coverage::Coverage;
use crate::error::{finite, non_negative, MetrologyError, Result};
use crate::rounding::{Reported, Rounding};

/// How an input's standard uncertainty was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// By statistical analysis of a series of observations.
    TypeA,
    /// By other means (certificates, specifications, experience).
    TypeB,
    /// Combined from a budget of its own (several components).
    Combined,
}

/// One input quantity of the measurement model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Its name, unique in the budget (e.g. `dmm_gain`).
    pub name: String,
    /// Its estimate xᵢ.
    pub value: f64,
    /// Its standard uncertainty u(xᵢ), in the input's unit.
    pub u: f64,
    /// The sensitivity coefficient cᵢ = ∂f/∂xᵢ (default 1).
    pub sensitivity: f64,
    /// How u(xᵢ) was evaluated.
    pub kind: Kind,
    /// Its degrees of freedom νᵢ; `None` for infinite (exactly known u).
    pub dof: Option<f64>,
}

impl Input {
    /// A Type A input: `u` from `dof` degrees of freedom (n − 1 for a mean of n).
    pub fn type_a(name: impl Into<String>, value: f64, u: f64, dof: f64) -> Self {
        Self {
            name: name.into(),
            value,
            u,
            sensitivity: 1.0,
            kind: Kind::TypeA,
            dof: Some(dof),
        }
    }

    /// A Type B input, its `u` taken as exactly known (infinite degrees of freedom; set a
    /// finite number with [`Input::dof`] or [`dof_from_reliability`]).
    pub fn type_b(name: impl Into<String>, value: f64, u: f64) -> Self {
        Self {
            name: name.into(),
            value,
            u,
            sensitivity: 1.0,
            kind: Kind::TypeB,
            dof: None,
        }
    }

    /// An input whose uncertainty comes from a budget of its own.
    pub fn combined(name: impl Into<String>, value: f64, from: &Combined) -> Self {
        Self {
            name: name.into(),
            value,
            u: from.u,
            sensitivity: 1.0,
            kind: Kind::Combined,
            dof: from.dof,
        }
    }

    /// With sensitivity coefficient `c`.
    #[must_use]
    pub fn sensitivity(mut self, c: f64) -> Self {
        self.sensitivity = c;
        self
    }

    /// With `nu` degrees of freedom.
    #[must_use]
    pub fn dof(mut self, nu: f64) -> Self {
        self.dof = Some(nu);
        self
    }

    /// Its contribution |cᵢ|·u(xᵢ) to the combined standard uncertainty.
    pub fn contribution(&self) -> f64 {
        (self.sensitivity * self.u).abs()
    }

    fn check(&self) -> Result<()> {
        let name = &self.name;
        if name.trim().is_empty() {
            return Err(MetrologyError::Invalid {
                what: "input name".into(),
                problem: "empty".into(),
            });
        }
        finite(|| format!("value of `{name}`"), self.value)?;
        non_negative(|| format!("standard uncertainty of `{name}`"), self.u)?;
        finite(
            || format!("sensitivity coefficient of `{name}`"),
            self.sensitivity,
        )?;
        if let Some(nu) = self.dof {
            finite(|| format!("degrees of freedom of `{name}`"), nu)?;
            if nu <= 0.0 {
                return Err(MetrologyError::Invalid {
                    what: format!("degrees of freedom of `{name}`"),
                    problem: format!("{nu} is not positive"),
                });
            }
        }
        Ok(())
    }
}

/// The degrees of freedom of a Type B uncertainty known to a relative reliability
/// Δu/u (JCGM 100:2008 G.4.2: ν ≈ ½ (Δu/u)⁻²); 0.25 gives 8.
pub fn dof_from_reliability(relative: f64) -> Result<f64> {
    finite(|| "relative reliability".into(), relative)?;
    if relative <= 0.0 {
        return Err(MetrologyError::Invalid {
            what: "relative reliability".into(),
            problem: format!("{relative} is not positive"),
        });
    }
    finite(
        || "degrees of freedom from that reliability".into(),
        0.5 / (relative * relative),
    )
}

/// A correlation coefficient between two inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correlation {
    /// One input's name.
    pub a: String,
    /// The other's.
    pub b: String,
    /// r(a, b), between −1 and 1.
    pub r: f64,
}

/// A standard uncertainty with its degrees of freedom: what a budget combines to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Combined {
    /// The combined standard uncertainty u_c.
    pub u: f64,
    /// ν_eff by Welch–Satterthwaite; `None` for infinite.
    pub dof: Option<f64>,
}

/// An input's line in an evaluated budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The input.
    pub name: String,
    /// How its uncertainty was evaluated.
    pub kind: Kind,
    /// Its estimate.
    pub value: f64,
    /// Its standard uncertainty.
    pub u: f64,
    /// Its sensitivity coefficient.
    pub sensitivity: f64,
    /// |cᵢ|·u(xᵢ), in the measurand's unit.
    pub contribution: f64,
    /// Its degrees of freedom (`None`: infinite).
    pub dof: Option<f64>,
    /// Its share of u_c², between 0 and 1 (correlation terms not included).
    pub share: f64,
}

/// An evaluated budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// One line per input, in the budget's order.
    pub contributions: Vec<Contribution>,
    /// The combined standard uncertainty u_c.
    pub combined_u: f64,
    /// ν_eff by Welch–Satterthwaite (`None`: infinite).
    pub dof_eff: Option<f64>,
    /// The degrees of freedom k was looked up at (ν_eff, truncated if asked).
    pub dof_used: Option<f64>,
    /// The coverage probability.
    pub coverage_probability: f64,
    /// The coverage factor k.
    pub k: f64,
    /// The expanded uncertainty U = k·u_c.
    pub expanded: f64,
}

impl Evaluation {
    /// `value` and U rounded for a report (U to two significant digits).
    pub fn report(&self, value: f64, rounding: Rounding) -> Result<Reported> {
        Reported::new(value, self.expanded, rounding)
    }
}

/// A GUM uncertainty budget (JCGM 100:2008, first-order terms).
///
/// u_c² = Σ cᵢ²u²(xᵢ) + 2 Σᵢ<ⱼ cᵢcⱼu(xᵢ)u(xⱼ)r(xᵢ, xⱼ); ν_eff = u_c⁴ / Σ (cᵢu(xᵢ))⁴/νᵢ
/// (Welch–Satterthwaite, over the inputs with finite νᵢ; with correlated inputs it is the
/// customary approximation, and correlations that cancel most of u_c drive it below one
/// degree of freedom, which [`Coverage`] refuses); U = t_p(ν_eff)·u_c.
///
/// ```
/// use mqttcal_metrology::{Budget, Coverage, Input};
/// let budget = Budget::new()
///     .with(Input::type_b("reference", 10.000_012, 0.000_000_15).dof(50.0))
///     .with(Input::type_a("difference", -0.000_001_3, 0.000_000_08, 9.0))
///     .with(Input::type_b("dmm_gain", 0.0, 0.000_01).sensitivity(-0.000_001_3));
/// let e = budget.evaluate(&Coverage::default()).unwrap();
/// assert!(e.combined_u > 1.6e-7 && e.combined_u < 1.8e-7);
/// assert!(e.k > 2.0 && e.k < 2.2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// The inputs.
    pub inputs: Vec<Input>,
    /// Correlations between inputs (absent pairs are uncorrelated).
    pub correlations: Vec<Correlation>,
}

impl Budget {
    /// An empty budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// With one more input.
    #[must_use]
    pub fn with(mut self, input: Input) -> Self {
        self.inputs.push(input);
        self
    }

    /// With inputs `a` and `b` correlated by `r`.
    #[must_use]
    pub fn correlate(mut self, a: impl Into<String>, b: impl Into<String>, r: f64) -> Self {
        self.correlations.push(Correlation {
            a: a.into(),
            b: b.into(),
            r,
        });
        self
    }

    /// Checks the inputs and correlations; the index of each input by name.
    fn check(&self) -> Result<HashMap<&str, usize>> {
        let mut index = HashMap::new();
        for (i, input) in self.inputs.iter().enumerate() {
            input.check()?;
            if index.insert(input.name.as_str(), i).is_some() {
                return Err(MetrologyError::Invalid {
                    what: format!("input `{}`", input.name),
                    problem: "named twice in the budget".into(),
                });
            }
        }
        let mut pairs = std::collections::HashSet::new();
        for c in &self.correlations {
            let what = || format!("correlation of `{}` and `{}`", c.a, c.b);
            finite(what, c.r)?;
            if !(-1.0..=1.0).contains(&c.r) {
                return Err(MetrologyError::Invalid {
                    what: what(),
                    problem: format!("{} is not between -1 and 1", c.r),
                });
            }
            let (Some(&i), Some(&j)) = (index.get(c.a.as_str()), index.get(c.b.as_str())) else {
                return Err(MetrologyError::Invalid {
                    what: what(),
                    problem: "names an input that is not in the budget".into(),
                });
            };
            if i == j {
                return Err(MetrologyError::Invalid {
                    what: what(),
                    problem: "an input with itself".into(),
                });
            }
            if !pairs.insert((i.min(j), i.max(j))) {
                return Err(MetrologyError::Invalid {
                    what: what(),
                    problem: "given twice".into(),
                });
            }
        }
        Ok(index)
    }

    /// u_c and ν_eff: what the budget gives as one input of another budget.
    pub fn combined(&self) -> Result<Combined> {
        let index = self.check()?;
        if self.inputs.is_empty() {
            return Err(MetrologyError::TooFewPoints {
                what: "an uncertainty budget",
                needed: 1,
                got: 0,
            });
        }
        let too_large = || MetrologyError::Invalid {
            what: "combined uncertainty".into(),
            problem: "too large to compute in floating point".into(),
        };
        let mut variance: f64 = self.inputs.iter().map(|i| i.contribution().powi(2)).sum();
        // The sum of the terms' sizes, to tell rounding from a real negative variance.
        let mut magnitude = variance;
        for c in &self.correlations {
            let (a, b) = (
                &self.inputs[index[c.a.as_str()]],
                &self.inputs[index[c.b.as_str()]],
            );
            let term = 2.0 * c.r * a.sensitivity * a.u * b.sensitivity * b.u;
            variance += term;
            magnitude += term.abs();
        }
        if !variance.is_finite() || !magnitude.is_finite() {
            return Err(too_large());
        }
        if variance < 0.0 {
            // Full anti-correlation of equal terms cancels to a rounding error.
            if variance >= -1e-12 * magnitude {
                variance = 0.0;
            } else {
                return Err(MetrologyError::Invalid {
                    what: "correlations".into(),
                    problem: "not consistent: the combined variance comes out negative".into(),
                });
            }
        }
        let u = variance.sqrt();
        // Welch–Satterthwaite on the contributions relative to u_c, so fourth powers of
        // very large or very small uncertainties neither overflow nor vanish.
        let dof = if u > 0.0 {
            let denominator: f64 = self
                .inputs
                .iter()
                .filter_map(|i| i.dof.map(|nu| (i.contribution() / u).powi(4) / nu))
                .sum();
            if !denominator.is_finite() {
                return Err(too_large());
            }
            (denominator > 0.0).then(|| 1.0 / denominator)
        } else {
            None
        };
        Ok(Combined { u, dof })
    }

    /// Evaluates the budget for `coverage`.
    pub fn evaluate(&self, coverage: &Coverage) -> Result<Evaluation> {
        let combined = self.combined()?;
        let dof_used = coverage.dof_used(combined.dof)?;
        let k = coverage.factor(combined.dof)?;
        let expanded = finite(|| "expanded uncertainty".into(), k * combined.u)?;
        let total: f64 = self.inputs.iter().map(|i| i.contribution().powi(2)).sum();
        let contributions = self
            .inputs
            .iter()
            .map(|i| Contribution {
                name: i.name.clone(),
                kind: i.kind,
                value: i.value,
                u: i.u,
                sensitivity: i.sensitivity,
                contribution: i.contribution(),
                dof: i.dof,
                share: if total > 0.0 {
                    i.contribution().powi(2) / total
                } else {
                    0.0
                },
            })
            .collect();
        Ok(Evaluation {
            contributions,
            combined_u: combined.u,
            dof_eff: combined.dof,
            dof_used,
            coverage_probability: coverage.probability,
            k,
            expanded,
        })
    }
}
