//! Every driver against recorded command/response pairs: no socket, no simulator.

use mqttcal_instruments::drivers::{
    Dmm, DmmConfig, EnvSensor, Hp3458, InstrumentError, ScpiDmm, ScpiEnvSensor, ScpiScanner, Switch,
};
use mqttcal_instruments::interface::Replay;

const CONFIG: DmmConfig = DmmConfig {
    range: 10.0,
    nplc: 100.0,
    ndigits: 8,
};

#[tokio::test]
async fn hp3458_session() {
    let replay = Replay::new([
        ("ID?", Some("HP3458A")),
        ("CALSTR?", Some("\"\"")),
        (
            "END ALWAYS;OFORMAT ASCII;TARM HOLD;DCV 10;NPLC 100;NDIG 8;FIXEDZ OFF",
            None,
        ),
        ("ERRSTR?", Some("0,\"NO ERROR\"")),
        ("TRIG SGL", Some("+1.00001234E+01")),
        ("TRIG SGL", Some("+1.0E+38")),
    ]);
    let mut dmm = Hp3458::new(Box::new(replay));
    assert_eq!(dmm.identify().await.unwrap(), "HP3458A");
    dmm.configure(&CONFIG).await.unwrap().unwrap();
    let r = dmm.read().await.unwrap().unwrap();
    assert_eq!((r.value, r.raw.as_str()), (10.0001234, "+1.00001234E+01"));
    assert!(matches!(
        dmm.read().await.unwrap(),
        Err(InstrumentError::Overload(_))
    ));
}

#[tokio::test]
async fn hp3458_reports_its_error_queue() {
    let replay = Replay::new([
        (
            "END ALWAYS;OFORMAT ASCII;TARM HOLD;DCV 10;NPLC 100;NDIG 8;FIXEDZ OFF",
            None,
        ),
        ("ERRSTR?", Some("2,\"PARAMETER OUT OF RANGE\"")),
        ("ERRSTR?", Some("0,\"NO ERROR\"")),
    ]);
    let mut dmm = Hp3458::new(Box::new(replay));
    match dmm.configure(&CONFIG).await.unwrap() {
        Err(InstrumentError::Reported(e)) => assert_eq!(e[0].message, "PARAMETER OUT OF RANGE"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn scpi_dmm_session() {
    let replay = Replay::new([
        ("*IDN?", Some("Keysight Technologies,34470A,MY1,A.03.02")),
        ("CONF:VOLT:DC 10;VOLT:DC:NPLC 100;VOLT:DC:IMP:AUTO ON", None),
        ("SYST:ERR?", Some("+0,\"No error\"")),
        ("READ?", Some("+1.01800123456E+00")),
        ("READ?", Some("garbage")),
    ]);
    let mut dmm = ScpiDmm::new(Box::new(replay));
    assert!(dmm.identify().await.unwrap().contains("34470A"));
    dmm.configure(&CONFIG).await.unwrap().unwrap();
    assert_eq!(dmm.read().await.unwrap().unwrap().value, 1.01800123456);
    let err = dmm.read().await.unwrap_err().to_string();
    assert!(err.contains("unexpected answer to `READ?`"), "{err}");
}

#[tokio::test]
async fn scanner_session() {
    let replay = Replay::new([
        ("ROUT:CLOS (@2)", None),
        ("*OPC?", Some("1")),
        ("SYST:ERR?", Some("+0,\"No error\"")),
        ("ROUT:POL NEG", None),
        ("*OPC?", Some("1")),
        ("SYST:ERR?", Some("+0,\"No error\"")),
        ("ROUT:OPEN:ALL", None),
        ("*OPC?", Some("1")),
        ("SYST:ERR?", Some("-222,\"Data out of range\"")),
        ("SYST:ERR?", Some("+0,\"No error\"")),
    ]);
    let mut s = ScpiScanner::new(Box::new(replay));
    s.connect(2).await.unwrap().unwrap();
    s.set_polarity(true).await.unwrap().unwrap();
    assert!(matches!(
        s.open_all().await.unwrap(),
        Err(InstrumentError::Reported(_))
    ));
}

#[tokio::test]
async fn env_sensor_session() {
    let replay = Replay::new([
        ("MEAS:TEMP?", Some("23.012")),
        ("MEAS:HUM?", Some("44.9")),
        ("MEAS:PRES?", Some("1012.80")),
    ]);
    let mut e = ScpiEnvSensor::new(Box::new(replay));
    let r = e.read().await.unwrap().unwrap();
    assert_eq!(
        (r.temperature, r.humidity, r.pressure),
        (23.012, 44.9, 1012.8)
    );
}

#[tokio::test]
async fn a_command_off_the_recording_is_named() {
    let mut dmm = ScpiDmm::new(Box::new(Replay::new([("*IDN?", Some("x,y,z,w"))])));
    let err = dmm.read().await.unwrap_err().to_string();
    assert!(
        err.contains("sent `READ?`, the recording has `*IDN?`"),
        "{err}"
    );
}
