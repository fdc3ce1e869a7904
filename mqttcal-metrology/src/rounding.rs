//! Reporting a result: U to two significant digits, the value to the same decimal place.

use serde::{Deserialize, Serialize};

use crate::error::{finite, MetrologyError, Result};

/// How U is rounded to two significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// To the nearest (JCGM 100:2008 7.2.6), the default.
    #[default]
    Nearest,
    /// Upwards, so the reported U is never smaller than the computed one (a policy some
    /// laboratories follow).
    Up,
}

/// A value and its expanded uncertainty as reported.
///
/// ```
/// use mqttcal_metrology::{Reported, Rounding};
/// let r = Reported::new(10.000_012_344, 0.000_000_934_1, Rounding::Nearest).unwrap();
/// assert_eq!(r.value_text(), "10.00001234");
/// assert_eq!(r.expanded_text(), "0.00000093");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    /// The value, rounded to the decimal place of U's second significant digit.
    pub value: f64,
    /// U with two significant digits.
    pub expanded: f64,
    /// The power of ten of the last digit kept (−8: the value is kept to 1e-8).
    pub exponent: i32,
}

impl Reported {
    /// Rounds `value` and `expanded` (U > 0).
    pub fn new(value: f64, expanded: f64, rounding: Rounding) -> Result<Self> {
        finite(|| "value".into(), value)?;
        finite(|| "expanded uncertainty".into(), expanded)?;
        if expanded <= 0.0 {
            return Err(MetrologyError::Invalid {
                what: "expanded uncertainty".into(),
                problem: format!("{expanded} cannot be rounded to two significant digits"),
            });
        }
        if value != 0.0 && expanded < 1e-15 * value.abs() {
            return Err(MetrologyError::Invalid {
                what: "expanded uncertainty".into(),
                problem: format!(
                    "{expanded} is below the precision of the value {value} (about 16 significant digits)"
                ),
            });
        }
        let mut exponent = expanded.log10().floor() as i32 - 1;
        let mut u = round_at(expanded, exponent, rounding);
        // 99.6 rounds to 100: three digits; keep two at the next power.
        if u >= 100.0 * pow10(exponent) * (1.0 - 1e-12) {
            exponent += 1;
            u = round_at(expanded, exponent, rounding);
        }
        // + 0.0 turns a value rounded to −0 into 0 ("0.00", not "-0.00").
        let value = round_at(value, exponent, Rounding::Nearest) + 0.0;
        if !(value.is_finite() && u.is_finite()) {
            return Err(MetrologyError::Invalid {
                what: "expanded uncertainty".into(),
                problem: format!("{expanded} cannot be rounded in floating point"),
            });
        }
        Ok(Self {
            value,
            expanded: u,
            exponent,
        })
    }

    fn decimals(&self) -> usize {
        usize::try_from(-self.exponent).unwrap_or(0)
    }

    /// The value as text with exactly the digits kept.
    pub fn value_text(&self) -> String {
        format!("{:.*}", self.decimals(), self.value)
    }

    /// U as text with exactly the digits kept.
    pub fn expanded_text(&self) -> String {
        format!("{:.*}", self.decimals(), self.expanded)
    }
}

fn pow10(e: i32) -> f64 {
    10f64.powi(e)
}

/// `x` rounded to a multiple of 10^e.
fn round_at(x: f64, e: i32, rounding: Rounding) -> f64 {
    // Dividing by 10^-e keeps more exactness than multiplying by 10^e for e < 0.
    let scaled = if e < 0 { x * pow10(-e) } else { x / pow10(e) };
    let r = match rounding {
        Rounding::Nearest => scaled.round(),
        // A tolerance of a few ulps, so 23.000000000000004 (0.023 scaled) stays 23.
        Rounding::Up => (scaled - 8.0 * f64::EPSILON * scaled.abs()).ceil(),
    };
    if e < 0 {
        r / pow10(-e)
    } else {
        r * pow10(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_significant_digits_and_the_value_to_match() {
        let r = Reported::new(50.000_838, 0.000_092_6, Rounding::Nearest).unwrap();
        assert_eq!(
            (r.value_text().as_str(), r.expanded_text().as_str()),
            ("50.000838", "0.000093")
        );
        let r = Reported::new(1234.5, 99.6, Rounding::Nearest).unwrap();
        assert_eq!(
            (r.value_text().as_str(), r.expanded_text().as_str()),
            ("1230", "100")
        );
        assert_eq!(r.exponent, 1);
        let r = Reported::new(1.0, 0.0231, Rounding::Up).unwrap();
        assert_eq!(r.expanded_text(), "0.024");
        let r = Reported::new(1.0, 0.023, Rounding::Up).unwrap();
        assert_eq!(r.expanded_text(), "0.023");
        assert!(Reported::new(1.0, 0.0, Rounding::Nearest).is_err());
        assert!(Reported::new(f64::NAN, 0.1, Rounding::Nearest).is_err());
        let r = Reported::new(1.0, 23.000_000_01, Rounding::Up).unwrap();
        assert_eq!(r.expanded_text(), "24", "never below the computed U");
        let r = Reported::new(-0.001, 0.5, Rounding::Nearest).unwrap();
        assert_eq!(r.value_text(), "0.00");
        for (v, u) in [
            (1.0, 5e-308),
            (1.0, 1e-310),
            (1e10, 1e-300),
            (10.0, 1e-15),
            (1.0, f64::MAX),
        ] {
            assert!(Reported::new(v, u, Rounding::Nearest).is_err(), "{v} ± {u}");
        }
    }
}
