//! The simulated DMM over its socket: readings of a shorted input (no channel connected)
//! scatter less the longer they integrate, as 1/√NPLC.

mod common;

use common::link;

use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458, ScpiScanner, Switch};
use mqttcal_instruments::sim::{LabParams, SimLab};

#[tokio::test]
async fn the_noise_of_a_shorted_input_falls_as_one_over_root_nplc() {
    let params = LabParams {
        time_factor: 1e-6,
        seed: 5,
        ..LabParams::default()
    };
    let lab = SimLab::start(params, "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    scanner.open_all().await.unwrap().unwrap();
    let mut dmm = Hp3458::new(link(&lab.hp3458).await);
    let mut sd = Vec::new();
    for nplc in [1.0, 10.0, 100.0] {
        dmm.configure(&DmmConfig {
            range: 10.0,
            nplc,
            ndigits: 8,
        })
        .await
        .unwrap()
        .unwrap();
        let mut values = Vec::new();
        for _ in 0..300 {
            values.push(dmm.read().await.unwrap().unwrap().value);
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let s = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        println!("NPLC {nplc}: s = {:.1} nV", s * 1e9);
        sd.push(s);
    }
    for (i, ratio) in [sd[0] / sd[1], sd[1] / sd[2]].into_iter().enumerate() {
        assert!(
            (ratio / 10f64.sqrt() - 1.0).abs() < 0.2,
            "step {i}: the noise fell by {ratio:.2}, 1/√NPLC says {:.2}",
            10f64.sqrt()
        );
    }
}
