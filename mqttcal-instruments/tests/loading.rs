//! The simulated standards' output resistance against the DMM's input: a fixed 10 MΩ input
//! loads the 1.018 V output (about 1 kΩ) by about 100 ppm and leaves the 10 V output
//! (under 1 mΩ) alone; a high-impedance input loads neither.

mod common;

use common::link;

use mqttcal_instruments::drivers::{ScpiScanner, Switch};
use mqttcal_instruments::interface::{query, send, Interface};
use mqttcal_instruments::sim::{LabParams, SimLab};

async fn mean_reading(dmm: &mut dyn Interface, fixed: bool) -> f64 {
    let z = if fixed { "ON" } else { "OFF" };
    send(
        dmm,
        &format!("END ALWAYS;OFORMAT ASCII;TARM HOLD;DCV 10;NPLC 100;NDIG 8;FIXEDZ {z}"),
    )
    .await
    .unwrap();
    let mut sum = 0.0;
    for _ in 0..8 {
        sum += query(dmm, "TRIG SGL")
            .await
            .unwrap()
            .trim()
            .parse::<f64>()
            .unwrap();
    }
    sum / 8.0
}

#[tokio::test]
async fn a_fixed_input_loads_the_1018_mv_output_and_not_the_10_v_one() {
    let params = LabParams {
        time_factor: 1e-5,
        seed: 9,
        ..LabParams::default()
    };
    let lab = SimLab::start(params, "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    let mut dmm = link(&lab.hp3458).await;
    // Channel 3 holds a 1.018 V standard, channel 1 a 10 V one (LabParams::default).
    for (channel, nominal, expected_ppm) in [(3, 1.018, 1000.0 / 10e6 * 1e6), (1, 10.0, 0.0)] {
        scanner.connect(channel).await.unwrap().unwrap();
        let high = mean_reading(dmm.as_mut(), false).await;
        let fixed = mean_reading(dmm.as_mut(), true).await;
        let ppm = (high - fixed) / nominal * 1e6;
        println!("channel {channel}: a 10 MΩ input reads {ppm:.2} ppm low");
        assert!(
            (ppm - expected_ppm).abs() < 1.0,
            "channel {channel}: {ppm} ppm, expected {expected_ppm} ppm"
        );
    }
}
