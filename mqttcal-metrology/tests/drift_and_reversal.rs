//! The drift fit against the closed form of weighted least squares, computed here on its
//! own; the reversal estimators exact on noise-free data whatever the offset and its
//! linear drift.

use mqttcal_metrology::*;
use proptest::prelude::*;

/// Weighted least squares about t = 0 in closed form: (a₀, b, var a₀, var b, cov, χ²).
fn closed_form(points: &[HistoryPoint]) -> (f64, f64, f64, f64, f64, f64) {
    let (mut s, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in points {
        let w = 1.0 / (p.u * p.u);
        s += w;
        sx += w * p.t;
        sy += w * p.value;
        sxx += w * p.t * p.t;
        sxy += w * p.t * p.value;
    }
    let delta = s * sxx - sx * sx;
    let b = (s * sxy - sx * sy) / delta;
    let a0 = (sxx * sy - sx * sxy) / delta;
    let chi2: f64 = points
        .iter()
        .map(|p| ((p.value - a0 - b * p.t) / p.u).powi(2))
        .sum();
    (a0, b, sxx / delta, s / delta, -sx / delta, chi2)
}

fn history() -> Vec<HistoryPoint> {
    // Dates in days, unequal; values in µV above 10 V; uncertainties unequal.
    [
        (0.0, 10.3, 0.10),
        (190.0, 10.9, 0.12),
        (410.0, 11.0, 0.08),
        (800.0, 12.1, 0.15),
        (1130.0, 12.4, 0.10),
        (1500.0, 13.6, 0.20),
    ]
    .map(|(t, value, u)| HistoryPoint { t, value, u })
    .to_vec()
}

#[test]
fn the_drift_fit_matches_the_closed_form_with_birge_scaling() {
    let points = history();
    let fit = DriftFit::fit(&points, 0.05).unwrap();
    let (a0, b, var_a0, var_b, cov, chi2) = closed_form(&points);
    let dof = (points.len() - 2) as f64;
    let birge = (chi2 / dof).sqrt();
    assert!((fit.slope - b).abs() < 1e-12, "{} vs {b}", fit.slope);
    assert!((fit.birge_ratio.unwrap() - birge).abs() < 1e-9);
    let scale = if birge > 1.0 { birge * birge } else { 1.0 };
    assert_eq!(fit.scaled, birge > 1.0);
    println!("Birge ratio {birge:.3}, scaled {}", fit.scaled);
    // The prediction at a date after the last point, through the closed form's parameters
    // about t = 0 (its intercept–slope covariance is far from zero there).
    let t0 = 1800.0;
    let p = fit.predict(t0).unwrap();
    let want = a0 + b * t0;
    let want_var = scale * (var_a0 + t0 * t0 * var_b + 2.0 * t0 * cov);
    assert!((p.value - want).abs() < 1e-9, "{} vs {want}", p.value);
    assert!((p.u_line - want_var.sqrt()).abs() < 1e-9 * want_var.sqrt().max(1.0));
    assert!((p.u - (want_var + 0.05f64.powi(2)).sqrt()).abs() < 1e-9);
    // Scaled by the Birge ratio, the line's variance has n − 2 degrees of freedom; the
    // common part none of its own (exactly known): Welch–Satterthwaite over the two.
    if fit.scaled {
        let want_nu = dof * (want_var + 0.05f64.powi(2)).powi(2) / want_var.powi(2);
        assert!((p.dof.unwrap() - want_nu).abs() < 1e-6 * want_nu);
    } else {
        assert_eq!(p.dof, None);
    }
    // A new value adds the scatter about the line.
    let resid: f64 = points
        .iter()
        .map(|q| (q.value - a0 - b * q.t).powi(2))
        .sum();
    let new = fit.predict_new(t0).unwrap();
    assert!((new.u - (p.u.powi(2) + resid / dof).sqrt()).abs() < 1e-9);
    assert!(new.u > p.u);
}

#[test]
fn degrees_of_freedom_come_only_from_what_the_scatter_estimates() {
    let point = |t: f64, value: f64| HistoryPoint { t, value, u: 0.1 };
    // Two points, or three consistent with their uncertainties: the prediction is as well
    // known as the points (no finite degrees of freedom), so a third point never makes the
    // coverage factor jump from 2 to 9.
    let two = DriftFit::fit(&[point(0.0, 10.0), point(365.0, 10.4)], 0.0).unwrap();
    assert_eq!(two.predict(400.0).unwrap().dof, None);
    assert_eq!(two.predict_new(400.0).unwrap().dof, None);
    let three = [point(0.0, 10.0), point(365.0, 10.42), point(730.0, 10.8)];
    let consistent = DriftFit::fit(&three, 0.0).unwrap();
    assert!(!consistent.scaled);
    assert_eq!(consistent.predict(800.0).unwrap().dof, None);
    // The scatter, though, is estimated with n − 2 = 1: a new value carries it.
    let new = consistent.predict_new(800.0).unwrap();
    assert!(new.dof.unwrap() >= 1.0 && new.dof.unwrap().is_finite());
    // Three points scattered far beyond their uncertainties: scaled, one degree of freedom.
    let scattered = [point(0.0, 10.0), point(365.0, 11.5), point(730.0, 10.8)];
    let fit = DriftFit::fit(&scattered, 0.0).unwrap();
    assert!(fit.scaled);
    let p = fit.predict(800.0).unwrap();
    assert!((p.dof.unwrap() - 1.0).abs() < 1e-9, "{:?}", p.dof);
}

#[test]
fn the_drift_fit_refuses_what_cannot_be_fitted() {
    let one = [HistoryPoint {
        t: 0.0,
        value: 1.0,
        u: 0.1,
    }];
    assert!(matches!(
        DriftFit::fit(&one, 0.0),
        Err(MetrologyError::TooFewPoints {
            needed: 2,
            got: 1,
            ..
        })
    ));
    let same_day = [
        HistoryPoint {
            t: 5.0,
            value: 1.0,
            u: 0.1,
        },
        HistoryPoint {
            t: 5.0,
            value: 1.1,
            u: 0.1,
        },
    ];
    assert!(matches!(
        DriftFit::fit(&same_day, 0.0),
        Err(MetrologyError::Degenerate { .. })
    ));
    let mut bad = history();
    bad[2].u = -0.1;
    let err = DriftFit::fit(&bad, 0.0).unwrap_err().to_string();
    assert!(err.contains("point 3"), "{err}");
    bad[2].u = 0.1;
    bad[4].value = f64::NAN;
    assert!(DriftFit::fit(&bad, 0.0)
        .unwrap_err()
        .to_string()
        .contains("point 5"));
    // Two points: an exact line, no Birge ratio, no degrees of freedom claimed.
    let two = DriftFit::fit(&history()[..2], 0.0).unwrap();
    assert!(two.birge_ratio.is_none() && !two.scaled);
    assert!(two.predict(100.0).unwrap().u.is_finite());
    assert!(two.predict(f64::NAN).is_err());
    assert!(two.predict(f64::INFINITY).is_err());
}

#[test]
fn type_a_and_allan_refuse_short_series() {
    assert!(TypeA::of(&[1.0]).is_err());
    assert!(TypeA::of(&[1.0, f64::INFINITY]).is_err());
    assert!(allan_deviation(&[1.0, 2.0, 3.0, 4.0], 2).is_err());
    assert!(allan_deviation(&[1.0, 2.0, 3.0], 0).is_err());
    assert!(allan_curve(&[1.0; 10], -1.0, 3).is_err());
}

#[test]
fn reversal_fits_refuse_degenerate_patterns() {
    let same: Vec<PolarityReading> = (0..5)
        .map(|i| PolarityReading {
            t: f64::from(i),
            polarity: Polarity::Positive,
            value: 1.0,
        })
        .collect();
    assert!(matches!(
        fit_reversal(&same),
        Err(MetrologyError::Degenerate { .. })
    ));
    let two = &[
        PolarityReading {
            t: 0.0,
            polarity: Polarity::Positive,
            value: 1.0,
        },
        PolarityReading {
            t: 1.0,
            polarity: Polarity::Negative,
            value: -1.0,
        },
    ];
    assert!(matches!(
        fit_reversal(two),
        Err(MetrologyError::TooFewPoints { .. })
    ));
    // Polarity follows time exactly (+ + − −... with drift): still solvable with 4 points
    // at distinct times; but 3 readings at one time are not.
    let one_time: Vec<PolarityReading> =
        [Polarity::Positive, Polarity::Negative, Polarity::Positive]
            .into_iter()
            .map(|p| PolarityReading {
                t: 2.0,
                polarity: p,
                value: p.sign(),
            })
            .collect();
    assert!(matches!(
        fit_reversal(&one_time),
        Err(MetrologyError::Degenerate { .. })
    ));
    assert!(reversal_group([1.0, f64::NAN, 1.0, 1.0]).is_err());
    assert!(differential(10.0, &[1e-6]).is_err());
}

proptest! {
    #[test]
    fn a_reversal_group_is_exact_with_any_offset_and_linear_drift(
        v in -20.0f64..20.0,
        e0 in -1e-3f64..1e-3,
        e in -1e-4f64..1e-4,
        t0 in -1e4f64..1e4,
        dt in 0.1f64..100.0,
    ) {
        let r: Vec<f64> = [1.0, -1.0, -1.0, 1.0]
            .iter()
            .enumerate()
            .map(|(i, s)| s * v + e0 + e * (t0 + dt * i as f64))
            .collect();
        let got = reversal_group([r[0], r[1], r[2], r[3]]).unwrap();
        prop_assert!((got - v).abs() <= 1e-12 * (1.0 + v.abs() + (e * t0).abs()), "{got} vs {v}");
    }

    #[test]
    fn a_reversal_fit_is_exact_for_any_pattern_and_spacing(
        v in -20.0f64..20.0,
        e0 in -1e-3f64..1e-3,
        e in -1e-4f64..1e-4,
        start in 0.0f64..1e4,
        steps in proptest::collection::vec(0.05f64..30.0, 3..12),
        signs in proptest::collection::vec(any::<bool>(), 12),
    ) {
        let mut t = start;
        let mut readings = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            // Both polarities for sure: the first two readings differ.
            let positive = match i { 0 => true, 1 => false, _ => signs[i] };
            let polarity = if positive { Polarity::Positive } else { Polarity::Negative };
            readings.push(PolarityReading { t, polarity, value: polarity.sign() * v + e0 + e * t });
            t += step;
        }
        let fit = fit_reversal(&readings).unwrap();
        let scale = 1.0 + v.abs() + (e * t).abs();
        prop_assert!((fit.value - v).abs() <= 1e-9 * scale, "{} vs {v}", fit.value);
        prop_assert!((fit.drift - e).abs() <= 1e-9 * scale / (t - start).max(1.0) * 10.0, "drift {} vs {e}", fit.drift);
    }
}
