//! Special functions behind the coverage factors: the regularized incomplete beta and gamma
//! functions, written out here (about 1e-14 relative accuracy) so the crate needs no
//! numerical library.

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, nine coefficients).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

const EPS: f64 = 1e-15;
const TINY: f64 = 1e-300;
const MAX_ITER: usize = 1000;

/// The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 ≤ x ≤ 1.
pub(crate) fn beta_reg(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// `x`, or a tiny positive number where `x` is about zero (the modified Lentz method's
/// guard against dividing by zero).
fn away_from_zero(x: f64) -> f64 {
    if x.abs() < TINY {
        TINY
    } else {
        x
    }
}

/// The continued fraction of the incomplete beta function (modified Lentz).
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / away_from_zero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / away_from_zero(1.0 + aa * d);
        c = away_from_zero(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / away_from_zero(1.0 + aa * d);
        c = away_from_zero(1.0 + aa / c);
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The regularized lower incomplete gamma function P(a, x), for a > 0 and x ≥ 0.
pub(crate) fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series.
        let mut ap = a;
        let mut sum = 1.0 / a;
        let mut del = sum;
        for _ in 0..MAX_ITER {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        sum * front
    } else {
        // Continued fraction for Q = 1 − P (modified Lentz).
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..=MAX_ITER {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = 1.0 / away_from_zero(an * d + b);
            c = away_from_zero(b + an / c);
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPS {
                break;
            }
        }
        1.0 - front * h
    }
}

/// P(|T| ≤ k) for Student's t with `dof` degrees of freedom (`None`: the normal limit).
pub(crate) fn central_probability(k: f64, dof: Option<f64>) -> f64 {
    match dof {
        Some(nu) => 1.0 - beta_reg(nu / 2.0, 0.5, nu / (nu + k * k)),
        // erf(k/√2) = P(1/2, k²/2).
        None => gamma_p(0.5, k * k / 2.0),
    }
}

/// Above this many degrees of freedom t comes from the normal quantile by the
/// Cornish–Fisher expansion (its next term is below 1e-15 there), where the incomplete beta
/// function would lose its digits to cancellation.
const LARGE_DOF: f64 = 1e5;

/// The k with P(|T| ≤ k) = `p`; `None` when it cannot be found to full precision (k beyond
/// 1e15, a probability that does not compute).
pub(crate) fn central_quantile(p: f64, dof: Option<f64>) -> Option<f64> {
    match dof {
        Some(nu) if nu > LARGE_DOF => {
            let z = bisect(p, None)?;
            let (z3, z5) = (z.powi(3), z.powi(5));
            Some(z + (z3 + z) / (4.0 * nu) + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * nu * nu))
        }
        _ => bisect(p, dof),
    }
}

/// Bisection on k (the probability grows with k).
fn bisect(p: f64, dof: Option<f64>) -> Option<f64> {
    const CAP: f64 = 1e15;
    let prob = |k: f64| {
        let v = central_probability(k, dof);
        v.is_finite().then_some(v)
    };
    let mut hi = 2.0;
    while prob(hi)? < p {
        hi *= 2.0;
        if hi > CAP {
            return None;
        }
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if prob(mid)? < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-13 * hi {
            break;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_matches_factorials_and_the_half() {
        for (n, fact) in [(1.0, 1.0), (2.0, 1.0), (5.0, 24.0), (11.0, 3_628_800.0_f64)] {
            assert!((ln_gamma(n) - fact.ln()).abs() < 1e-12, "Γ({n})");
        }
        let half = std::f64::consts::PI.sqrt().ln();
        assert!((ln_gamma(0.5) - half).abs() < 1e-12);
    }

    #[test]
    fn quantiles_match_published_tables() {
        // Two-sided Student t table values and the normal ones.
        let cases = [
            (0.95, Some(1.0), 12.706_204_736),
            (0.95, Some(10.0), 2.228_138_852),
            (0.99, Some(16.0), 2.920_781_622),
            (0.95, None, 1.959_963_985),
            (0.99, None, 2.575_829_304),
        ];
        for (p, nu, want) in cases {
            let k = central_quantile(p, nu).unwrap();
            assert!(
                (k - want).abs() < 2e-6 * want,
                "p {p}, ν {nu:?}: {k} vs {want}"
            );
        }
        // JCGM 100:2008 Table G.2, p = 95.45 %, two decimals.
        for (nu, want) in [
            (1.0, 13.97),
            (2.0, 4.53),
            (3.0, 3.31),
            (5.0, 2.65),
            (10.0, 2.28),
            (20.0, 2.13),
            (50.0, 2.05),
        ] {
            let k = central_quantile(0.9545, Some(nu)).unwrap();
            assert!((k - want).abs() < 0.006, "ν {nu}: {k} vs {want}");
        }
        // 95.45 % is the normal k = 2 (erf(√2)).
        let k = central_quantile(0.954_499_736_103_642, None).unwrap();
        assert!((k - 2.0).abs() < 1e-9, "{k}");
    }

    #[test]
    fn large_degrees_of_freedom_tend_to_the_normal_quantile() {
        let z = central_quantile(0.9545, None).unwrap();
        let mut last = f64::INFINITY;
        for nu in [
            1e3, 1e4, 99_999.0, 100_001.0, 1e6, 1e8, 1e11, 1e15, 1e20, 1e300,
        ] {
            let k = central_quantile(0.9545, Some(nu)).unwrap();
            assert!(k >= z && k <= last + 1e-12, "ν {nu}: {k}");
            assert!(k - z < 3.0 / nu.min(1e15) + 1e-12, "ν {nu}: {k} vs {z}");
            last = k;
        }
        // The two sides of the switch agree (to 1e-11: the beta side loses a few digits
        // there, which is why it switches).
        let below = central_quantile(0.99, Some(LARGE_DOF)).unwrap();
        let above = central_quantile(0.99, Some(LARGE_DOF * (1.0 + 1e-9))).unwrap();
        assert!((below - above).abs() < 1e-10, "{below} vs {above}");
    }

    #[test]
    fn quantiles_beyond_reach_are_refused() {
        // p so close to 1 that k passes 1e15 at one degree of freedom.
        assert!(central_quantile(1.0 - 1e-16, Some(1.0)).is_none());
    }
}
