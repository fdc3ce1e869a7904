//! Inputs a careless or hostile caller may pass: every one gives a right answer or a clear
//! error, never a NaN, an infinity, a panic or a silently wrong coverage factor.

use mqttcal_metrology::*;

fn k_of(budget: &Budget) -> f64 {
    budget.evaluate(&Coverage::default()).unwrap().k
}

#[test]
fn a_tiny_type_a_next_to_an_exact_type_b_gives_the_normal_k() {
    // ν_eff = 9e20 and 9e16: k must be the normal 2, not 256 or 2.83.
    for u_a in [1e-11, 1e-10] {
        let b = Budget::new()
            .with(Input::type_b("reference", 10.0, 1e-6))
            .with(Input::type_a("noise", 0.0, u_a, 9.0));
        let k = k_of(&b);
        assert!((k - 2.0).abs() < 1e-5, "u_A {u_a}: k {k}");
    }
}

#[test]
fn welch_satterthwaite_holds_at_any_scale() {
    // Two equal terms of ν = 2: ν_eff = 4, k(95.45 %, 4) = 2.87, whatever the unit.
    for u in [1e-90, 1e-30, 1.0, 1e30, 1e80] {
        let b = Budget::new()
            .with(Input::type_a("a", 0.0, u, 2.0))
            .with(Input::type_a("b", 0.0, u, 2.0));
        let e = b.evaluate(&Coverage::default()).unwrap();
        assert!(
            (e.dof_eff.unwrap() - 4.0).abs() < 1e-9,
            "u {u}: {:?}",
            e.dof_eff
        );
        assert!((e.k - 2.87).abs() < 0.01, "u {u}: {}", e.k);
    }
    let huge = Budget::new().with(Input::type_b("a", 0.0, 1e200));
    assert!(huge.evaluate(&Coverage::default()).is_err());
}

#[test]
fn full_anti_correlation_of_equal_terms_is_zero_not_an_error() {
    for (u, c) in [(0.3, 3.0), (1e-6, 10.0), (7.0, 1.0)] {
        let b = Budget::new()
            .with(Input::type_b("a", 0.0, u).sensitivity(c))
            .with(Input::type_b("b", 0.0, u).sensitivity(c))
            .correlate("a", "b", -1.0);
        let e = b.evaluate(&Coverage::default()).unwrap();
        assert_eq!(e.combined_u, 0.0, "u {u}, c {c}");
        assert!(e.k.is_finite());
    }
    // Correlations that cancel most of u_c leave less than one degree of freedom: refused.
    let b = Budget::new()
        .with(Input::type_a("a", 0.0, 1.0, 10.0))
        .with(Input::type_a("b", 0.0, 1.0, 10.0))
        .correlate("a", "b", -0.999);
    let err = b.evaluate(&Coverage::default()).unwrap_err().to_string();
    assert!(err.contains("fewer than 1"), "{err}");
}

#[test]
fn dates_in_seconds_and_milliseconds_fit() {
    // Six calibrations a month apart, dated in seconds since 1970.
    let history: Vec<HistoryPoint> = (0..6)
        .map(|i| {
            let t = 1.7e9 + 86_400.0 * 30.0 * f64::from(i);
            HistoryPoint {
                t,
                value: 10.0 + 1e-14 * (t - 1.7e9),
                u: 1e-7,
            }
        })
        .collect();
    let fit = DriftFit::fit(&history, 0.0).unwrap();
    assert!((fit.slope - 1e-14).abs() < 1e-18, "{}", fit.slope);
    let p = fit.predict(1.7e9 + 86_400.0 * 200.0).unwrap();
    assert!((p.value - (10.0 + 1e-14 * 86_400.0 * 200.0)).abs() < 1e-12);
    // Twenty readings three minutes apart, timestamps in milliseconds.
    let readings: Vec<PolarityReading> = (0..20)
        .map(|i| {
            let t = 1.7e12 + 180_000.0 * f64::from(i);
            let polarity = if (i / 2) % 2 == 0 {
                Polarity::Positive
            } else {
                Polarity::Negative
            };
            PolarityReading {
                t,
                polarity,
                value: polarity.sign() * 1.018 + 2e-6 + 1e-15 * (t - 1.7e12),
            }
        })
        .collect();
    let fit = fit_reversal(&readings).unwrap();
    assert!((fit.value - 1.018).abs() < 1e-12, "{}", fit.value);
}

#[test]
fn overflowing_inputs_are_refused_not_returned() {
    // Taken about the first value, equal huge values are fine; a spread that overflows is not.
    assert_eq!(TypeA::of(&[f64::MAX, f64::MAX]).unwrap().mean, f64::MAX);
    assert!(TypeA::of(&[1e300, -1e300]).is_err());
    assert!(dof_from_reliability(1e-200).is_err());
    assert!(allan_deviation(&[1.0; 10], usize::MAX / 2 + 1).is_err());
    assert!(allan_deviation(&[1.0; 10], usize::MAX).is_err());
    let two_max = [
        HistoryPoint {
            t: 0.0,
            value: f64::MAX,
            u: 1.0,
        },
        HistoryPoint {
            t: 1.0,
            value: f64::MAX,
            u: 1.0,
        },
    ];
    assert!(DriftFit::fit(&two_max, 0.0).is_err());
    let wild = [
        HistoryPoint {
            t: 0.0,
            value: 1e300,
            u: 1.0,
        },
        HistoryPoint {
            t: 1.0,
            value: -1e300,
            u: 1.0,
        },
        HistoryPoint {
            t: 2.0,
            value: 1e300,
            u: 1.0,
        },
    ];
    assert!(DriftFit::fit(&wild, 0.0).is_err());
    let tiny_u = [
        HistoryPoint {
            t: 0.0,
            value: 1.0,
            u: 1e-160,
        },
        HistoryPoint {
            t: 1.0,
            value: 1.0,
            u: 1e-160,
        },
    ];
    let err = DriftFit::fit(&tiny_u, 0.0).unwrap_err().to_string();
    assert!(err.contains("weight"), "{err}");
    // A + − − + group of the largest floats.
    let v = reversal_group([f64::MAX, -f64::MAX, -f64::MAX, f64::MAX]).unwrap();
    assert_eq!(v, f64::MAX);
}

#[test]
fn allan_deviation_keeps_its_digits_on_a_large_offset() {
    // 10 V with ±10 nV alternating: σ(τ₀) = √2 · 10 nV exactly, whatever the offset.
    let series: Vec<f64> = (0..100_000)
        .map(|i| 10.0 + if i % 2 == 0 { 1e-8 } else { -1e-8 })
        .collect();
    let a = allan_deviation(&series, 1).unwrap();
    assert!((a / (2f64.sqrt() * 1e-8) - 1.0).abs() < 1e-6, "{a}");
}
