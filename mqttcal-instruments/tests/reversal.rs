//! The method the lab relies on, on the simulator: a + − − + reversal removes the channel
//! EMF and the DMM offset (and a linear drift of them); a single-polarity reading does not.

mod common;

use common::link;

use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458, ScpiScanner, Switch};
use mqttcal_instruments::sim::{LabParams, SimLab};

#[tokio::test]
async fn reversal_recovers_the_true_value_and_single_polarity_is_biased() {
    let mut params = LabParams {
        time_factor: 1e-4,
        seed: 42,
        ..LabParams::default()
    };
    // A perfect gain, so the true value is what the method must find; offsets stay.
    params.dmm.gain_error = 0.0;
    let lab = SimLab::start(params, "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    let mut dmm = Hp3458::new(link(&lab.hp3458).await);
    dmm.configure(&DmmConfig {
        range: 10.0,
        nplc: 100.0,
        ndigits: 8,
    })
    .await
    .unwrap()
    .unwrap();
    let channel = 1;
    scanner.connect(channel).await.unwrap().unwrap();

    let groups = 12;
    let (mut reversed, mut single, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..groups {
        let mut r = [0.0; 4];
        for (i, negative) in [false, true, true, false].into_iter().enumerate() {
            scanner.set_polarity(negative).await.unwrap().unwrap();
            r[i] = dmm.read().await.unwrap().unwrap().value;
        }
        reversed.push((r[0] - r[1] - r[2] + r[3]) / 4.0);
        single.push((r[0] + r[3]) / 2.0);
        let m = lab.model.lock().unwrap();
        truth.push(m.true_output(0, m.now()));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let sd = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    let truth = mean(&truth);
    let (m_rev, u_rev) = (mean(&reversed), sd(&reversed) / (groups as f64).sqrt());
    let bias_single = mean(&single) - truth;
    let m = lab.model.lock().unwrap();
    let expected_bias = m.emf(channel, m.now()) + m.params().dmm.offset;
    drop(m);

    eprintln!(
        "reversal - truth = {:+.1} nV (u = {:.1} nV); single-polarity bias = {:+.1} nV (expected {:+.1} nV)",
        (m_rev - truth) * 1e9,
        u_rev * 1e9,
        bias_single * 1e9,
        expected_bias * 1e9
    );
    // Within the noise: 4 standard uncertainties of the mean (white plus low-frequency noise).
    assert!(
        (m_rev - truth).abs() < 4.0 * u_rev + 5e-9,
        "reversal {m_rev} vs truth {truth}: {} nV, u = {} nV",
        (m_rev - truth) * 1e9,
        u_rev * 1e9
    );
    // Single polarity carries the EMF plus the DMM offset (about 185 nV here).
    assert!(
        (bias_single - expected_bias).abs() < 0.3 * expected_bias,
        "single-polarity bias {} nV, expected about {} nV",
        bias_single * 1e9,
        expected_bias * 1e9
    );
    assert!(
        bias_single.abs() > 10.0 * u_rev,
        "the bias must stand out of the noise"
    );
}
