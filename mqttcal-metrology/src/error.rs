//! What can be wrong with the data handed to an estimator.

/// Why a computation refused its input. Every function of this crate returns one of these
/// instead of a NaN or an infinite result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetrologyError {
    /// Fewer points than the computation needs.
    #[error("{what} needs at least {needed} points, got {got}")]
    TooFewPoints {
        /// The computation.
        what: &'static str,
        /// The least number of points it works with.
        needed: usize,
        /// The number given.
        got: usize,
    },
    /// A NaN or an infinity where a number is needed.
    #[error("{what} is not a finite number ({value})")]
    NotFinite {
        /// Which value, e.g. `reading 3`.
        what: String,
        /// The value.
        value: f64,
    },
    /// A negative value where only zero or more makes sense (an uncertainty).
    #[error("{what} must not be negative ({value})")]
    Negative {
        /// Which value.
        what: String,
        /// The value.
        value: f64,
    },
    /// A value outside its domain (a probability of 1.2, a correlation of 2, a repeated
    /// name).
    #[error("{what}: {problem}")]
    Invalid {
        /// Which value.
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The points do not determine the result (all at one time, one polarity only).
    #[error("{what} cannot be determined from these points: {why}")]
    Degenerate {
        /// The computation.
        what: &'static str,
        /// Why.
        why: &'static str,
    },
}

/// Short for `Result<T, MetrologyError>`.
pub type Result<T> = std::result::Result<T, MetrologyError>;

/// `value` if it is finite.
pub(crate) fn finite(what: impl FnOnce() -> String, value: f64) -> Result<f64> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetrologyError::NotFinite {
            what: what(),
            value,
        })
    }
}

/// `value` if it is finite and not negative.
pub(crate) fn non_negative(what: impl Fn() -> String, value: f64) -> Result<f64> {
    finite(&what, value)?;
    if value < 0.0 {
        return Err(MetrologyError::Negative {
            what: what(),
            value,
        });
    }
    Ok(value)
}

/// At least `needed` points.
pub(crate) fn at_least(what: &'static str, needed: usize, got: usize) -> Result<()> {
    if got < needed {
        return Err(MetrologyError::TooFewPoints { what, needed, got });
    }
    Ok(())
}
