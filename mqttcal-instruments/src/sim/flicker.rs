//! Flicker (1/f) noise for the simulated standards: a sum of relaxation processes whose time
//! constants cover a band at two per decade. Inside the band the power spectrum falls as
//! 1/f and the Allan deviation is flat, as a Zener's is past its white-noise region
//! (averaging longer stops helping).
//!
//! Each process x with time constant T and variance σ² moves over a step dt exactly as
//! x ← x·e^(−dt/T) + σ·√(1 − e^(−2dt/T))·N(0, 1), so the noise is the same whatever the
//! spacing of the readings (a virtual clock, a real one, or readings seconds apart).

use super::rng::Rng;

/// Time constants per decade.
const PER_DECADE: f64 = 2.0;

/// A flicker noise source with a flat Allan deviation `floor` for averaging times between
/// about 2·`shortest` and `longest`/2.
#[derive(Debug, Clone)]
pub(crate) struct Flicker {
    /// Time constants of the processes.
    times: Vec<f64>,
    /// The standard deviation of each process.
    sigma: f64,
    /// The processes' present values.
    state: Vec<f64>,
}

/// The Allan variance of a process with exponential autocorrelation (variance 1, time
/// constant T) at averaging time τ, as a function of x = τ/T:
/// (2x − 3 + 4e^(−x) − e^(−2x)) / x².
fn allan_variance_of_relaxation(x: f64) -> f64 {
    if x < 1e-4 {
        // The series: x·(1 − 7x/12 ...) → the limit at 0.
        return x - 7.0 * x * x / 12.0;
    }
    (2.0 * x - 3.0 + 4.0 * (-x).exp() - (-2.0 * x).exp()) / (x * x)
}

impl Flicker {
    /// Flicker noise whose Allan deviation is `floor` between the time constants
    /// `shortest` and `longest` (seconds, `shortest < longest`), started from its
    /// stationary distribution.
    pub(crate) fn new(floor: f64, shortest: f64, longest: f64, rng: &mut Rng) -> Self {
        let decades = (longest / shortest).log10().max(0.0);
        let n = (decades * PER_DECADE).round() as usize + 1;
        let times: Vec<f64> = (0..n)
            .map(|k| shortest * 10f64.powf(k as f64 / PER_DECADE))
            .collect();
        // Equal variances; scaled so the Allan variance at the band's geometric centre is
        // floor².
        let centre = (shortest * longest).sqrt();
        let unit: f64 = times
            .iter()
            .map(|t| allan_variance_of_relaxation(centre / t))
            .sum();
        let sigma = if unit > 0.0 { floor / unit.sqrt() } else { 0.0 };
        let state = times.iter().map(|_| sigma * rng.normal()).collect();
        Self {
            times,
            sigma,
            state,
        }
    }

    /// The model's Allan deviation at averaging time `tau`, from its parameters: what a
    /// long series should show.
    #[cfg(test)]
    pub(crate) fn allan_deviation(&self, tau: f64) -> f64 {
        let sum: f64 = self
            .times
            .iter()
            .map(|t| allan_variance_of_relaxation(tau / t))
            .sum();
        self.sigma * sum.sqrt()
    }

    /// Advances by `dt` seconds (0 or more) and returns the noise's new value.
    pub(crate) fn advance(&mut self, dt: f64, rng: &mut Rng) -> f64 {
        let dt = dt.max(0.0);
        let mut total = 0.0;
        for (x, t) in self.state.iter_mut().zip(&self.times) {
            if dt > 0.0 {
                let decay = (-dt / t).exp();
                *x = *x * decay + self.sigma * (1.0 - decay * decay).sqrt() * rng.normal();
            }
            total += *x;
        }
        total
    }

    /// The present value.
    pub(crate) fn value(&self) -> f64 {
        self.state.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttcal_metrology::{allan_curve, allan_deviation};

    #[test]
    fn the_allan_floor_is_flat_over_two_decades_and_at_the_set_level() {
        let mut rng = Rng::new(7);
        let floor = 2e-9;
        let mut f = Flicker::new(floor, 1.0, 1e5, &mut rng);
        // The model's own curve: flat within 10 % between 10 s and 10,000 s.
        for tau in [10.0, 31.6, 100.0, 316.0, 1000.0, 3162.0, 10_000.0] {
            let model = f.allan_deviation(tau);
            assert!((model / floor - 1.0).abs() < 0.1, "τ {tau}: {model}");
        }
        // A simulated series, one sample a second, agrees with it.
        let series: Vec<f64> = (0..200_000).map(|_| f.advance(1.0, &mut rng)).collect();
        for m in [16usize, 128, 1024, 8192] {
            let a = allan_deviation(&series, m).unwrap();
            // The estimate's own scatter at N/m averages: √(1/(N/m)) roughly.
            let tolerance = 0.15 + 2.0 / ((series.len() / m) as f64).sqrt();
            assert!(
                (a / floor - 1.0).abs() < tolerance,
                "m {m}: {a} vs the floor {floor}"
            );
        }
    }

    #[test]
    fn white_noise_meets_the_floor_where_the_model_says() {
        // σ_white per reading and the flicker floor: the crossover is τ₀(σ_w/σ_f)².
        let (tau0, white, floor): (f64, f64, f64) = (1.0, 20e-9, 2e-9);
        let expected = tau0 * (white / floor).powi(2);
        for seed in [1, 2, 3] {
            let mut rng = Rng::new(seed);
            let mut f = Flicker::new(floor, 1.0, 1e5, &mut rng);
            let series: Vec<f64> = (0..131_072)
                .map(|_| f.advance(tau0, &mut rng) + white * rng.normal())
                .collect();
            let curve = allan_curve(&series, tau0, 16).unwrap();
            // White level from the first point, the floor from the long-τ points.
            let white_level = curve[0].deviation;
            let tail: Vec<f64> = curve
                .iter()
                .filter(|p| p.tau >= 20.0 * expected)
                .map(|p| p.deviation)
                .collect();
            let floor_seen = (tail.iter().map(|d| d * d).sum::<f64>() / tail.len() as f64).sqrt();
            let crossover = tau0 * (white_level / floor_seen).powi(2);
            println!("seed {seed}: crossover {crossover:.0} s (model {expected:.0} s)");
            assert!(
                crossover > expected / 2.0 && crossover < expected * 2.0,
                "seed {seed}: crossover at {crossover} s, the model says {expected} s"
            );
        }
    }

    #[test]
    fn a_step_of_any_length_keeps_the_variance() {
        let mut rng = Rng::new(11);
        let mut f = Flicker::new(1.0, 1.0, 1e4, &mut rng);
        let expected: f64 = f.sigma.powi(2) * f.times.len() as f64;
        let mut sum = 0.0;
        let n = 20_000;
        for _ in 0..n {
            let v = f.advance(5_000.0, &mut rng);
            sum += v * v;
        }
        let var = sum / f64::from(n);
        assert!((var / expected - 1.0).abs() < 0.1, "{var} vs {expected}");
        assert_eq!(f.advance(0.0, &mut rng), f.value(), "no time, no change");
    }
}
