//! The simulated DMMs over their sockets: the resolution follows `NDIG` on the 3458A and
//! NPLC on the SCPI DMM, and the noise and the offset depend on the range.

mod common;

use common::link;

use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458, ScpiDmm, ScpiScanner, Switch};
use mqttcal_instruments::sim::{LabParams, SimLab};

/// The largest distance of `values` from a multiple of `quantum`, in quanta.
fn off_grid(values: &[f64], quantum: f64) -> f64 {
    values
        .iter()
        .map(|v| (v / quantum - (v / quantum).round()).abs())
        .fold(0.0, f64::max)
}

fn sd(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

async fn readings(dmm: &mut dyn Dmm, range: f64, nplc: f64, ndigits: u8, n: usize) -> Vec<f64> {
    dmm.configure(&DmmConfig {
        range,
        nplc,
        ndigits,
    })
    .await
    .unwrap()
    .unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(dmm.read().await.unwrap().unwrap().value);
    }
    out
}

#[tokio::test]
async fn resolution_follows_the_digits_and_noise_the_range() {
    let params = LabParams {
        time_factor: 0.0,
        seed: 11,
        ..LabParams::default()
    };
    let offsets = params.dmm.range_offset;
    let lab = SimLab::start(params, "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    scanner.connect(1).await.unwrap().unwrap();
    let mut hp = Hp3458::new(link(&lab.hp3458).await);
    // Z1 (10 V) on the 10 V range at 5½ digits: readings on a 10 µV grid; at 8½, not.
    let coarse = readings(&mut hp, 10.0, 1.0, 5, 20).await;
    assert!(off_grid(&coarse, 1e-5) < 1e-3, "{coarse:?}");
    let fine = readings(&mut hp, 10.0, 1.0, 8, 20).await;
    assert!(
        off_grid(&fine, 1e-5) > 0.05,
        "8½ digits are finer than 10 µV: {fine:?}"
    );
    let mut scpi = ScpiDmm::new(link(&lab.scpi_dmm).await);
    // 4½ digits at 0.02 NPLC: a 1 mV grid on the 10 V range.
    let fast = readings(&mut scpi, 10.0, 0.02, 8, 20).await;
    assert!(off_grid(&fast, 1e-3) < 1e-3, "{fast:?}");
    // A shorted input: the 0.1 V range is ten times quieter than the 10 V range, and its
    // offset is its own.
    scanner.open_all().await.unwrap().unwrap();
    let low = readings(&mut hp, 0.1, 1.0, 8, 200).await;
    let high = readings(&mut hp, 10.0, 1.0, 8, 200).await;
    let ratio = sd(&high) / sd(&low);
    assert!((ratio / 10.0 - 1.0).abs() < 0.25, "noise ratio {ratio:.2}");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let step = mean(&low) - mean(&high);
    let expected = offsets[0] - offsets[2];
    assert!(
        (step - expected).abs() < 10e-9,
        "offset step {:.1} nV, expected {:.1} nV",
        step * 1e9,
        expected * 1e9
    );
}
