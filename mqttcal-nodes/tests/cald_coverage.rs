//! Does U cover what it claims? 50 calibrations of Z1 against Z2 through the whole chain
//! (a real Mosquitto and PostgreSQL, labd on the simulated instruments over sockets, datad,
//! cald), each on a simulated lab whose systematic effects are drawn, seed by seed, from the
//! distributions the budget gives them; each result is compared with the simulator's truth
//! (Z1's output, flicker included, averaged over the readings). The lab runs on a virtual
//! clock, so nothing depends on thread scheduling.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqttcal_core::Client;
use mqttcal_instruments::sim::{EmfParams, LabParams, SimLab, StandardParams};
use mqttcal_nodes::cald::{self, CaldConfig};
use mqttcal_nodes::labd::{self, LabdConfig};
use mqttcal_testkit::{BrokerKind, Mosquitto, Postgres};
use serde_json::{json, Value};

const DAY: f64 = 86_400.0;
const SEEDS: u64 = 50;
/// The stated uncertainty of each calibration in the reference's history (k = 1).
const HISTORY_U: f64 = 0.1e-6;

/// splitmix64 with Box–Muller: the test's own draws, apart from the simulator's noise.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform on [−a, a]: a rectangular distribution of half-width a.
    fn within(&mut self, a: f64) -> f64 {
        a * (2.0 * self.next() - 1.0)
    }
    fn normal(&mut self, sd: f64) -> f64 {
        let (u1, u2) = (self.next().max(1e-300), self.next());
        sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The lab of one seed: every systematic effect the budget carries, drawn from the
/// distribution the budget gives it (defaults of `cald::Terms`).
fn lab_params(seed: u64, d: &mut Draw) -> LabParams {
    let terms = cald::Terms::default();
    let mut z1 = StandardParams::zener_10v("Z1", d.within(20e-6));
    z1.temp_coeff = d.within(terms.temperature_coefficient);
    let mut z2 = StandardParams::zener_10v("Z2", d.within(20e-6));
    z2.drift_per_day = d.within(3e-8);
    z2.temp_coeff = d.within(terms.temperature_coefficient);
    z2.pressure_coeff = d.within(terms.pressure_coefficient);
    // Each channel's share of the EMF before the reversal point; the budget's `emf` is
    // their sum. The EMFs after it (cancelled) are anything.
    let emf = |d: &mut Draw| EmfParams {
        constant: d.within(200e-9),
        drift_per_s: d.within(5e-11),
        temp_coeff: d.within(50e-9),
        before_reversal: d.normal(terms.emf / 2f64.sqrt()),
    };
    let mut p = LabParams {
        seed,
        time_factor: 0.0,
        standards: vec![z1, z2],
        emfs: vec![emf(d), emf(d)],
        ..LabParams::default()
    };
    // 100 mV range, 24 h: ±2.5 ppm of reading, rectangular; the offset cancels.
    p.dmm.gain_error = d.within(2.5e-6);
    p.dmm.range_gain = [0.0; 5];
    p.dmm.offset = d.within(2e-6);
    p
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Z2's history: six yearly calibrations of its true drift line, each off by a draw of its
/// stated uncertainty.
async fn seed_history(c: &Client, z2: &StandardParams, d: &mut Draw) {
    let ctx = c.context();
    ctx.request(
        "datad",
        "register_equipment",
        json!({"id": "Z2", "kind": "standard", "serial": "Z2-1", "calibration_due": now() + 100.0 * DAY}),
    )
    .await
    .unwrap();
    for k in 0..6 {
        let back = 30.0 + 365.0 * f64::from(5 - k);
        let line = z2.nominal + z2.offset - z2.drift_per_day * back;
        ctx.request(
            "datad",
            "add_calibration",
            json!({"equipment": "Z2", "calibrated_at": now() - back * DAY,
                   "value": line + d.normal(HISTORY_U), "unit": "V",
                   "uncertainty": 2.0 * HISTORY_U, "coverage_factor": 2.0}),
        )
        .await
        .unwrap();
    }
}

async fn result_of(c: &Client, job: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let j = c
            .context()
            .request("datad", "job", json!({"id": job}))
            .await;
        if let Ok(j) = j {
            match j["status"].as_str() {
                Some("done") => break,
                Some("planned" | "running") => {}
                _ => panic!("job {job}: {j}"),
            }
        }
        assert!(Instant::now() < end, "job {job} did not end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .context()
        .request("datad", "results", json!({"id": job}))
        .await
        .unwrap();
    r[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u_covers_the_simulators_truth_in_at_least_45_of_50_calibrations() {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let pg = Postgres::start();
    let url = broker.url();
    let c = client(&url).await;
    let cald = cald::node("cald", CaldConfig::default())
        .build()
        .start(&transport(&url))
        .await
        .unwrap();
    let (mut inside, mut normalised) = (0, Vec::new());
    for seed in 0..SEEDS {
        let mut d = Draw(seed);
        let params = lab_params(seed, &mut d);
        let z2 = params.standards[1].clone();
        let sim = SimLab::start(params, "127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let store = mqttcal_store::open(&pg.create_database(&format!("cov{seed}")))
            .await
            .unwrap();
        let datad = start_datad(&url, store).await;
        let labd = labd::node("labd", LabdConfig::for_sim_lab(&sim))
            .build()
            .start(&transport(&url))
            .await
            .unwrap();
        wait_ping(&c, "datad").await;
        wait_ping(&c, "labd").await;
        seed_history(&c, &z2, &mut d).await;
        c.context()
            .request(
                "cald",
                "checkin",
                json!({"id": "Z1", "customer": "C", "serial": "Z1-1", "nominal_value": 10.0}),
            )
            .await
            .unwrap();
        let job = format!("COV-{seed}");
        c.context()
            .request(
                "cald",
                "start",
                json!({"item": "Z1", "job": job, "procedure": {
                    "name": "DCV-10V-DIFF", "reference": "Z2", "groups": 5, "readings": 4, "NPLC": 10}}),
            )
            .await
            .unwrap();
        let r = result_of(&c, &job).await;
        let truth: Vec<f64> = sim
            .model
            .lock()
            .unwrap()
            .take_truth()
            .iter()
            .filter_map(|t| t.x.filter(|x| x.0 == 0).map(|x| x.1))
            .collect();
        assert_eq!(truth.len(), 5 * 4 * 4, "seed {seed}: one truth per reading");
        let v_true = truth.iter().sum::<f64>() / truth.len() as f64;
        let (v, u_c, big_u) = (
            r["value"].as_f64().unwrap(),
            r["standard_uncertainty"].as_f64().unwrap(),
            r["expanded_uncertainty"].as_f64().unwrap(),
        );
        let e = v - v_true;
        if e.abs() <= big_u {
            inside += 1;
        }
        normalised.push(e / u_c);
        println!(
            "seed {seed:2}: error {:+7.1} nV, u_c {:5.1} nV, U {:6.1} nV, k {:.2}",
            e * 1e9,
            u_c * 1e9,
            big_u * 1e9,
            r["coverage_factor"].as_f64().unwrap()
        );
        labd.stop().await.unwrap();
        datad.stop().await.unwrap();
    }
    let n = normalised.len() as f64;
    let mean = normalised.iter().sum::<f64>() / n;
    let sd = (normalised.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    println!(
        "coverage: |V - V_true| <= U in {inside} of {SEEDS}; normalised errors: mean {mean:+.2}, standard deviation {sd:.2}"
    );
    assert!(
        inside >= 45,
        "U covered the truth in only {inside} of {SEEDS}"
    );
    assert!(
        (0.6..=1.5).contains(&sd),
        "the normalised errors' standard deviation is {sd:.2}: the budget is {}",
        if sd < 0.6 { "inflated" } else { "too small" }
    );
    cald.stop().await.unwrap();
}
