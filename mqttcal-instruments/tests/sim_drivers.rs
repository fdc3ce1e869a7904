//! Every driver against its simulator over a real TCP socket.

mod common;

use common::link;

use mqttcal_instruments::drivers::{
    Dmm, DmmConfig, EnvSensor, Hp3458, InstrumentError, ScpiDmm, ScpiEnvSensor, ScpiScanner, Switch,
};
use mqttcal_instruments::interface::InterfaceError;
use mqttcal_instruments::sim::{LabParams, SimLab};

async fn lab() -> SimLab {
    let params = LabParams {
        time_factor: 0.001,
        ..LabParams::default()
    };
    SimLab::start(params, "127.0.0.1".parse().unwrap())
        .await
        .unwrap()
}

const CONFIG: DmmConfig = DmmConfig {
    range: 10.0,
    nplc: 10.0,
    ndigits: 8,
};

#[tokio::test]
async fn hp3458_reads_the_connected_standard() {
    let lab = lab().await;
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    let mut dmm = Hp3458::new(link(&lab.hp3458).await);
    assert_eq!(
        dmm.identify().await.unwrap(),
        format!(
            "HP3458A CALSTR \"{}\"",
            mqttcal_instruments::sim::SIM_CALSTR
        )
    );
    dmm.configure(&CONFIG).await.unwrap().unwrap();
    scanner.connect(1).await.unwrap().unwrap();
    let r = dmm.read().await.unwrap().unwrap();
    // Z1 is 10 V + 12.3 µV; gain error 0.2 ppm, noise tens of nV.
    assert!((r.value - 10.0000123).abs() < 5e-6, "{r:?}");
    assert!(
        r.raw.starts_with("+1.00000") && r.raw.ends_with("E+01"),
        "{}",
        r.raw
    );
}

#[tokio::test]
async fn scpi_dmm_reads_and_reports_errors_in_the_inner_layer() {
    let lab = lab().await;
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    let mut dmm = ScpiDmm::new(link(&lab.scpi_dmm).await);
    assert!(dmm.identify().await.unwrap().contains("34470A"));
    dmm.configure(&CONFIG).await.unwrap().unwrap();
    scanner.connect(3).await.unwrap().unwrap();
    let r = dmm.read().await.unwrap().unwrap();
    assert!((r.value - 1.0180008).abs() < 5e-6, "{r:?}");

    // An NPLC the instrument refuses comes back as its own error, not a link failure.
    let bad = DmmConfig {
        nplc: 7.0,
        ..CONFIG
    };
    match dmm.configure(&bad).await.unwrap() {
        Err(InstrumentError::Reported(errors)) => assert_eq!(errors[0].code, -222),
        other => panic!("{other:?}"),
    }
    // An error placed in the queue is drained by the next check.
    lab.scpi_dmm.push_error(-310, "System error");
    let errors = dmm.errors().await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "System error");
}

#[tokio::test]
async fn an_open_input_on_a_small_range_is_an_overload() {
    let lab = lab().await;
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    let mut dmm = ScpiDmm::new(link(&lab.scpi_dmm).await);
    dmm.configure(&DmmConfig {
        range: 0.1,
        ..CONFIG
    })
    .await
    .unwrap()
    .unwrap();
    scanner.connect(1).await.unwrap().unwrap();
    match dmm.read().await.unwrap() {
        Err(InstrumentError::Overload(raw)) => assert!(raw.contains("E+37"), "{raw}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn scanner_refuses_a_channel_it_does_not_have() {
    let lab = lab().await;
    let mut scanner = ScpiScanner::new(link(&lab.scanner_x).await);
    assert!(scanner.identify().await.unwrap().contains("scanner"));
    match scanner.connect(99).await.unwrap() {
        Err(InstrumentError::Reported(e)) => assert_eq!(e[0].code, -222),
        other => panic!("{other:?}"),
    }
    scanner.set_polarity(true).await.unwrap().unwrap();
    assert!(lab.model.lock().unwrap().switches.negative);
    scanner.open_all().await.unwrap().unwrap();
    assert_eq!(lab.model.lock().unwrap().switches.x, None);
}

#[tokio::test]
async fn env_sensor_reads_plausible_conditions() {
    let lab = lab().await;
    let mut env = ScpiEnvSensor::new(link(&lab.env).await);
    assert!(env.identify().await.unwrap().contains("ENV-1"));
    let e = env.read().await.unwrap().unwrap();
    assert!((e.temperature - 23.0).abs() < 0.2, "{e:?}");
    assert!((e.humidity - 45.0).abs() < 3.0, "{e:?}");
    assert!((e.pressure - 1013.25).abs() < 5.0, "{e:?}");
}

#[tokio::test]
async fn a_stopped_simulator_is_a_link_failure_and_comes_back() {
    let mut lab = lab().await;
    let mut dmm = Hp3458::new(link(&lab.hp3458).await);
    dmm.configure(&CONFIG).await.unwrap().unwrap();
    lab.hp3458.stop();
    let err = dmm.read().await.unwrap_err();
    assert!(
        matches!(
            err,
            InterfaceError::Closed { .. } | InterfaceError::Io { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("TCPIP::127.0.0.1::"), "{err}");
    lab.hp3458.restart().await.unwrap();
    let mut dmm = Hp3458::new(link(&lab.hp3458).await);
    assert!(dmm.identify().await.unwrap().starts_with("HP3458A"));
}
