//! From a job's readings and the reference's history to a result with its GUM budget: no
//! I/O, so it is tested on synthetic data.
//!
//! Model (series opposition, docs/metrology.md): V_x = V̂_ref(t) + d̄ + δ_gain + δ_emf +
//! δ_stab + δ_T + δ_p, with d̄ the mean over groups of each group's reversal fit, V̂_ref(t) the reference's drift line
//! predicted at the job's mean time, and the δ terms zero with the procedure's standard
//! uncertainties.

use mqttcal_messages::{BudgetEntry, CalibrationRecord, Evaluation as Eval};
use mqttcal_metrology::{
    fit_reversal, Budget, Coverage, DriftFit, Evaluation, Input, Kind, MetrologyError,
    PolarityReading, Prediction, Reported, Rounding, TypeA,
};

use super::procedure::Terms;
use crate::history::{history_points, DAY};

/// What a job's evaluation gives.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// V_x, unrounded.
    pub value: f64,
    /// The evaluated budget (u_c, ν_eff, k, U).
    pub evaluation: Evaluation,
    /// Value and U rounded for the certificate.
    pub reported: Reported,
    /// One difference per reversal group, V.
    pub groups: Vec<f64>,
    /// The Type A evaluation of the groups.
    pub type_a: TypeA,
    /// The reference predicted at the job's mean time.
    pub reference: Prediction,
    /// The budget as datad stores it.
    pub budget: Vec<BudgetEntry>,
}

/// How far the lab was from reference conditions during a job: the half-widths of the
/// rectangular distributions of the temperature and pressure terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviations {
    /// The largest deviation from 23 °C, K.
    pub temperature: f64,
    /// The largest deviation from 1013.25 hPa, hPa.
    pub pressure: f64,
}

/// Evaluates `groups` (each the readings of one + − − + group, times in Unix seconds)
/// against the reference's `history`.
pub fn evaluate(
    groups: &[Vec<PolarityReading>],
    history: &[CalibrationRecord],
    terms: &Terms,
    deviations: Deviations,
) -> Result<Outcome, MetrologyError> {
    let fits = groups
        .iter()
        .map(|g| fit_reversal(g).map(|f| (f.value, f.t_mean)))
        .collect::<Result<Vec<_>, _>>()?;
    let differences: Vec<f64> = fits.iter().map(|f| f.0).collect();
    let at = fits.iter().map(|f| f.1).sum::<f64>() / fits.len().max(1) as f64;
    let type_a = TypeA::of(&differences)?;
    let points = history_points(history);
    let fit = DriftFit::fit(&points, terms.reference_common)?;
    // The line at the job's time: each calibration's own uncertainty covers its scatter
    // (the Birge ratio scales it when the scatter says otherwise); the reference's own
    // short-term wander about the line is the `reference_stability` term.
    let reference = fit.predict(at / DAY)?;
    let mut reference_input = Input::type_b("reference", reference.value, reference.u);
    if let Some(nu) = reference.dof {
        reference_input = reference_input.dof(nu);
    }
    let budget = Budget::new()
        .with(reference_input)
        .with(Input::type_a(
            "difference",
            type_a.mean,
            type_a.u,
            type_a.dof,
        ))
        .with(Input::type_b("dmm_gain", 0.0, terms.dmm_gain).sensitivity(type_a.mean))
        .with(Input::type_b("emf", 0.0, terms.emf))
        .with(Input::type_b(
            "reference_stability",
            0.0,
            terms.reference_stability,
        ))
        .with(Input::type_b(
            "temperature",
            0.0,
            terms.temperature_coefficient * deviations.temperature / 3f64.sqrt(),
        ))
        .with(Input::type_b(
            "pressure",
            0.0,
            terms.pressure_coefficient * deviations.pressure / 3f64.sqrt(),
        ));
    let evaluation = budget.evaluate(&Coverage::default())?;
    let value = reference.value + type_a.mean;
    let reported = evaluation.report(value, Rounding::Nearest)?;
    let entries = evaluation
        .contributions
        .iter()
        .map(|c| BudgetEntry {
            sensitivity: Some(c.sensitivity),
            value: Some(c.value),
            unit: Some(if c.name == "dmm_gain" { "1" } else { "V" }.into()),
            evaluation: Some(if c.kind == Kind::TypeA {
                Eval::A
            } else {
                Eval::B
            }),
            dof: c.dof,
            distribution: Some(
                match c.name.as_str() {
                    "temperature" | "pressure" | "dmm_gain" => "rectangular",
                    "difference" => "t",
                    _ => "normal",
                }
                .into(),
            ),
            ..BudgetEntry::new(c.name.clone(), c.u)
        })
        .collect();
    Ok(Outcome {
        value,
        evaluation,
        reported,
        groups: differences,
        type_a,
        reference,
        budget: entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttcal_metrology::Polarity::{self, Negative, Positive};

    const DEV: Deviations = Deviations {
        temperature: 0.5,
        pressure: 5.0,
    };

    fn history(v0: f64, per_day: f64) -> Vec<CalibrationRecord> {
        (0..5)
            .map(|i| CalibrationRecord {
                equipment: "Z2".into(),
                calibrated_at: 1.7e9 + f64::from(i) * 365.0 * DAY,
                value: v0 + per_day * f64::from(i) * 365.0,
                unit: "V".into(),
                uncertainty: 0.2e-6,
                coverage_factor: 2.0,
                certificate: None,
                laboratory: None,
            })
            .collect()
    }

    fn group(t0: f64, d: f64, emf: f64) -> Vec<PolarityReading> {
        let pols: [Polarity; 4] = [Positive, Negative, Negative, Positive];
        pols.iter()
            .enumerate()
            .flat_map(|(i, p)| {
                (0..3).map(move |j| {
                    let t = t0 + (i * 3 + j) as f64;
                    PolarityReading {
                        t,
                        polarity: *p,
                        value: p.sign() * d + emf + 1e-10 * t,
                    }
                })
            })
            .collect()
    }

    #[test]
    fn noise_free_groups_give_the_reference_plus_the_difference() {
        let h = history(10.0, 1e-8);
        let at = 1.7e9 + 5.0 * 365.0 * DAY;
        // Groups that differ by a few nV, so the Type A evaluation has a spread.
        let groups: Vec<_> = (0..4)
            .map(|g| group(at + 100.0 * g as f64, 12e-6 + g as f64 * 1e-9, 3e-7))
            .collect();
        let o = evaluate(&groups, &h, &Terms::default(), DEV).unwrap();
        let expected_ref = 10.0 + 1e-8 * (at + 150.0 + 5.5) / DAY - 1e-8 * 1.7e9 / DAY;
        assert!(
            (o.reference.value - expected_ref).abs() < 1e-12,
            "{}",
            o.reference.value
        );
        assert!(
            (o.type_a.mean - 12.0015e-6).abs() < 1e-13,
            "{}",
            o.type_a.mean
        );
        assert!((o.value - (expected_ref + 12.0015e-6)).abs() < 1e-12);
        assert_eq!(o.groups.len(), 4);
        let names: Vec<&str> = o.budget.iter().map(|b| b.source.as_str()).collect();
        assert_eq!(
            names,
            [
                "reference",
                "difference",
                "dmm_gain",
                "emf",
                "reference_stability",
                "temperature",
                "pressure"
            ]
        );
        let uc2: f64 = o.budget.iter().map(|b| b.contribution().powi(2)).sum();
        assert!((uc2.sqrt() - o.evaluation.combined_u).abs() < 1e-15);
        assert!(o.evaluation.k > 2.0 && o.evaluation.expanded > 2.0 * o.evaluation.combined_u);
    }

    #[test]
    fn one_calibration_in_the_history_is_not_enough() {
        let h = history(10.0, 0.0);
        let groups: Vec<_> = (0..2)
            .map(|g| group(1.8e9 + 50.0 * g as f64, 1e-6, 0.0))
            .collect();
        let e = evaluate(&groups, &h[..1], &Terms::default(), DEV).unwrap_err();
        assert!(e.to_string().contains("at least 2"), "{e}");
    }
}
