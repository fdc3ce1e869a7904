//! Drivers over other links: a serial pseudo-terminal pair, and a GPIB adapter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mqttcal_instruments::drivers::{Dmm, DmmConfig, Hp3458, ScpiDmm, ScpiScanner, Switch};
use mqttcal_instruments::interface::{Prologix, SerialInterface, TcpInterface};
use mqttcal_instruments::sim::{
    self, Hp3458 as SimHp3458, LabModel, LabParams, PrologixAdapter, SimServer,
};
use mqttcal_testkit::PtyPair;
use tokio_serial::SerialPortBuilderExt;

fn model() -> sim::SharedLab {
    Arc::new(Mutex::new(LabModel::new(LabParams {
        time_factor: 0.001,
        ..LabParams::default()
    })))
}

#[tokio::test]
async fn scpi_dmm_over_a_serial_pseudo_terminal_pair() {
    let pty = PtyPair::start();
    let lab = model();
    lab.lock().unwrap().switches.x = Some(2);
    let far = tokio_serial::new(pty.b().to_string_lossy(), 9600)
        .open_native_async()
        .unwrap();
    tokio::spawn(sim::serve_stream(far, sim::ScpiDmm::new(), lab.clone()));

    let device = pty.a().to_string_lossy().into_owned();
    let link = SerialInterface::open(&device, 9600, Duration::from_secs(2)).unwrap();
    let mut dmm = ScpiDmm::new(Box::new(link));
    assert!(dmm.identify().await.unwrap().contains("34470A"));
    dmm.configure(&DmmConfig {
        range: 10.0,
        nplc: 10.0,
        ndigits: 8,
    })
    .await
    .unwrap()
    .unwrap();
    let r = dmm.read().await.unwrap().unwrap();
    // Z2 is 10 V - 4.1 µV.
    assert!((r.value - 9.9999959).abs() < 5e-6, "{r:?}");
}

#[tokio::test]
async fn hp3458_behind_a_gpib_ethernet_adapter() {
    let lab = model();
    let adapter = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        PrologixAdapter::new(SimHp3458::new(), 22),
        lab.clone(),
    )
    .await
    .unwrap();
    let scanner_sim = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        sim::Scanner::new(0),
        lab.clone(),
    )
    .await
    .unwrap();
    let tcp = TcpInterface::connect("127.0.0.1", adapter.addr().port(), Duration::from_secs(2))
        .await
        .unwrap();
    let gpib = Prologix::open(Box::new(tcp), 22).await.unwrap();
    let mut dmm = Hp3458::new(Box::new(gpib));
    assert!(dmm.identify().await.unwrap().starts_with("HP3458A"));
    let scanner_link = TcpInterface::connect(
        "127.0.0.1",
        scanner_sim.addr().port(),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let mut scanner = ScpiScanner::new(Box::new(scanner_link));
    scanner.connect(1).await.unwrap().unwrap();
    scanner.set_polarity(true).await.unwrap().unwrap();
    dmm.configure(&DmmConfig {
        range: 10.0,
        nplc: 10.0,
        ndigits: 8,
    })
    .await
    .unwrap()
    .unwrap();
    let r = dmm.read().await.unwrap().unwrap();
    assert!((r.value + 10.0000123).abs() < 5e-6, "{r:?}");
}

#[tokio::test]
async fn an_instrument_at_another_gpib_address_stays_silent() {
    let lab = model();
    let adapter = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        PrologixAdapter::new(SimHp3458::new(), 22),
        lab,
    )
    .await
    .unwrap();
    let tcp = TcpInterface::connect(
        "127.0.0.1",
        adapter.addr().port(),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let gpib = Prologix::open(Box::new(tcp), 9).await.unwrap();
    let mut dmm = Hp3458::new(Box::new(gpib));
    let err = dmm.identify().await.unwrap_err().to_string();
    assert!(
        err.contains("GPIB0::9::INSTR via TCPIP::127.0.0.1::") && err.contains("no answer"),
        "{err}"
    );
}

#[tokio::test]
async fn resource_strings_select_the_interface() {
    use mqttcal_instruments::interface::{open, query, OpenOptions};
    let lab = model();
    let adapter = SimServer::start(
        "127.0.0.1:0".parse().unwrap(),
        PrologixAdapter::new(SimHp3458::new(), 22),
        lab.clone(),
    )
    .await
    .unwrap();
    let dmm = SimServer::start("127.0.0.1:0".parse().unwrap(), sim::ScpiDmm::new(), lab)
        .await
        .unwrap();

    let mut socket = open(&dmm.resource(), &OpenOptions::default())
        .await
        .unwrap();
    assert!(query(&mut *socket, "*IDN?")
        .await
        .unwrap()
        .contains("34470A"));

    let options = OpenOptions {
        gpib_adapter: Some(adapter.resource()),
        ..OpenOptions::default()
    };
    let mut gpib = open("GPIB0::22::INSTR", &options).await.unwrap();
    assert_eq!(query(&mut *gpib, "ID?").await.unwrap(), "HP3458A");
    assert!(gpib
        .resource()
        .starts_with("GPIB0::22::INSTR via TCPIP::127.0.0.1::"));

    #[cfg(not(feature = "visa"))]
    {
        let err = open("GPIB0::22::INSTR", &OpenOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("need a GPIB adapter"), "{err}");
        let err = open("USB0::0x2A8D::0x0101::MY1::INSTR", &OpenOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown interface"), "{err}");
    }
}
