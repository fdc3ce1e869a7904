//! JCGM 100:2008 Annex H.1 (calibration of an end gauge), first-order terms: u_c = 32 nm,
//! ν_eff = 16 after truncation, k = t₀.₉₉(16) = 2.92, U = 93 nm. The inputs are the
//! Annex's; everything after them is computed here.

use mqttcal_metrology::{Budget, Coverage, Input, Rounding};

/// The gauge's length and the standard's, in nanometres.
const L_S: f64 = 50.000_623e6;
/// θ = −0.1 °C, α_s = 11.5 × 10⁻⁶ °C⁻¹.
const THETA: f64 = -0.1;
const ALPHA_S: f64 = 11.5e-6;

fn h1_budget() -> Budget {
    // d, the difference measured by the comparator: its own budget of three components.
    let d = Budget::new()
        .with(Input::type_a("repeated observations", 215.0, 5.8, 24.0))
        .with(Input::type_b("comparator, random", 0.0, 3.9).dof(5.0))
        .with(Input::type_b("comparator, systematic", 0.0, 6.7).dof(8.0))
        .combined()
        .unwrap();
    // Rectangular: ±1e-6 °C⁻¹ and ±0.05 °C.
    let u_delta_alpha = 1e-6 / 3f64.sqrt();
    let u_delta_theta = 0.05 / 3f64.sqrt();
    Budget::new()
        .with(Input::type_b("l_s", L_S, 25.0).dof(18.0))
        .with(Input::combined("d", 215.0, &d))
        .with(Input::type_b("alpha_s", ALPHA_S, 1.2e-6).sensitivity(0.0))
        .with(Input::type_b("theta", THETA, 0.41).sensitivity(0.0))
        .with(
            Input::type_b("delta_alpha", 0.0, u_delta_alpha)
                .sensitivity(-L_S * THETA)
                .dof(50.0),
        )
        .with(
            Input::type_b("delta_theta", 0.0, u_delta_theta)
                .sensitivity(-L_S * ALPHA_S)
                .dof(2.0),
        )
}

#[test]
fn the_gum_end_gauge_example() {
    let budget = h1_budget();
    let d = &budget.inputs[1];
    assert!((d.u - 9.7).abs() < 0.05, "u(d) = {}", d.u);
    // The Annex rounds u(d) to 9.7 nm before its Welch–Satterthwaite (25.6); unrounded,
    // 9.68 nm gives 25.4.
    assert!((d.dof.unwrap() - 25.6).abs() < 0.2, "ν(d) = {:?}", d.dof);

    let e = budget
        .evaluate(&Coverage::probability(0.99).unwrap().truncated())
        .unwrap();
    println!(
        "u_c = {:.2} nm, ν_eff = {:.2} (used {:?}), k = {:.4}, U = {:.2} nm",
        e.combined_u,
        e.dof_eff.unwrap(),
        e.dof_used,
        e.k,
        e.expanded
    );
    assert!((e.combined_u - 31.7).abs() <= 0.5, "u_c {}", e.combined_u);
    let nu = e.dof_eff.unwrap();
    assert!((nu - 16.7).abs() <= 0.1, "ν_eff {nu}");
    assert_eq!(e.dof_used, Some(16.0), "truncated as the GUM does");
    assert!((e.k - 2.92).abs() <= 0.005, "k {}", e.k);
    assert!((e.expanded - 93.0).abs() <= 1.0, "U {}", e.expanded);
    // U = 92.5 nm unrounded; the Annex's 93 nm is 2.92 × 32 nm, u_c rounded first. To the
    // nearest it is 92 nm; rounded up (never below the computed U), the Annex's 93 nm.
    let report = e.report(L_S + 215.0, Rounding::Nearest).unwrap();
    assert_eq!(report.expanded_text(), "92");
    assert_eq!(report.value_text(), "50000838");
    let report = e.report(L_S + 215.0, Rounding::Up).unwrap();
    assert_eq!(report.expanded_text(), "93");

    // Not truncated, k comes from ν_eff itself: a little smaller.
    let loose = budget
        .evaluate(&Coverage::probability(0.99).unwrap())
        .unwrap();
    assert!(loose.k < e.k && loose.k > 2.89, "k {}", loose.k);

    // The contributions are the Annex's table.
    let row = |name: &str| {
        e.contributions
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .contribution
    };
    for (name, want) in [
        ("l_s", 25.0),
        ("d", 9.7),
        ("alpha_s", 0.0),
        ("theta", 0.0),
        ("delta_alpha", 2.9),
        ("delta_theta", 16.6),
    ] {
        assert!((row(name) - want).abs() < 0.05, "{name}: {}", row(name));
    }
}

#[test]
fn bad_budgets_are_refused_with_the_reason() {
    let neg = Budget::new().with(Input::type_b("x", 1.0, -0.1));
    let err = neg.evaluate(&Coverage::default()).unwrap_err().to_string();
    assert!(err.contains("`x`") && err.contains("negative"), "{err}");

    let nan = Budget::new().with(Input::type_a("x", f64::NAN, 0.1, 4.0));
    assert!(nan.evaluate(&Coverage::default()).is_err());

    let twice = Budget::new()
        .with(Input::type_b("x", 1.0, 0.1))
        .with(Input::type_b("x", 2.0, 0.1));
    assert!(twice
        .evaluate(&Coverage::default())
        .unwrap_err()
        .to_string()
        .contains("twice"));

    let bad_r = Budget::new()
        .with(Input::type_b("x", 1.0, 0.1))
        .with(Input::type_b("y", 1.0, 0.1))
        .correlate("x", "y", 1.5);
    assert!(bad_r.evaluate(&Coverage::default()).is_err());

    let unknown = Budget::new()
        .with(Input::type_b("x", 1.0, 0.1))
        .correlate("x", "z", 0.5);
    assert!(unknown.evaluate(&Coverage::default()).is_err());

    assert!(Budget::new().evaluate(&Coverage::default()).is_err());
    assert!(Coverage::probability(1.0).is_err());
    assert!(Coverage::probability(f64::NAN).is_err());
    assert!(Budget::new()
        .with(Input::type_a("x", 1.0, 0.1, 0.0))
        .evaluate(&Coverage::default())
        .is_err());
}

#[test]
fn correlation_adds_the_cross_term() {
    let base = || {
        Budget::new()
            .with(Input::type_b("a", 0.0, 3.0))
            .with(Input::type_b("b", 0.0, 4.0).sensitivity(1.0))
    };
    let none = base().evaluate(&Coverage::default()).unwrap();
    assert!((none.combined_u - 5.0).abs() < 1e-12);
    let full = base()
        .correlate("a", "b", 1.0)
        .evaluate(&Coverage::default())
        .unwrap();
    assert!((full.combined_u - 7.0).abs() < 1e-12);
    let opposite = base()
        .correlate("a", "b", -1.0)
        .evaluate(&Coverage::default())
        .unwrap();
    assert!((opposite.combined_u - 1.0).abs() < 1e-12);
    // Infinite degrees of freedom everywhere: k is the normal one for 95.45 %.
    assert!(none.dof_eff.is_none());
    assert!((none.k - 2.0).abs() < 1e-5);
    // No NaN from a budget of zeros.
    let zero = Budget::new()
        .with(Input::type_a("a", 1.0, 0.0, 3.0))
        .evaluate(&Coverage::default())
        .unwrap();
    assert_eq!(zero.expanded, 0.0);
    assert!(zero.k.is_finite());
}
