//! labd against a real Mosquitto and simulated instruments over real sockets.

mod common;

use std::time::Duration;

use common::*;
use mqttcal_core::envelope::Envelope;
use mqttcal_core::transport::{Event, Link, QoS, SessionSpec, Subscription, Transport};
use mqttcal_core::{CallError, ErrorCode, NodeHandle};
use mqttcal_instruments::sim::{LabParams, SimLab};
use mqttcal_nodes::labd::{self, LabdConfig};
use mqttcal_testkit::{BrokerKind, Mosquitto};
use serde_json::{json, Value};

async fn setup(time_factor: f64) -> (Mosquitto, SimLab, NodeHandle) {
    let broker = Mosquitto::start(BrokerKind::NoDelay);
    let sim = SimLab::start(
        LabParams {
            time_factor,
            ..LabParams::default()
        },
        "127.0.0.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let node = labd::node("labd", LabdConfig::for_sim_lab(&sim))
        .build()
        .start(&transport(&broker.url()))
        .await
        .unwrap();
    (broker, sim, node)
}

async fn meas_link(url: &str) -> Link {
    transport(url)
        .connect(SessionSpec::new(
            format!("meas-watch-{}", std::process::id()),
            vec![Subscription::new("meas", QoS::AtLeastOnce)],
        ))
        .await
        .unwrap()
}

async fn next_reading(link: &mut Link) -> Envelope {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), link.events.recv())
            .await
            .expect("a reading on meas")
            .unwrap();
        if let Event::Message { payload, .. } = ev {
            let env = Envelope::decode(&payload, usize::MAX).unwrap();
            if env.fields.contains_key("DC-measurement") {
                return env;
            }
        }
    }
}

#[tokio::test]
async fn measure_with_10_repetitions_returns_10_readings_and_publishes_10_on_meas() {
    let (broker, _sim, node) = setup(0.001).await;
    let mut meas = meas_link(&broker.url()).await;
    let c = client(&broker.url()).await;
    let v = c
        .context()
        .request_timeout(
            "labd",
            "measure",
            json!({"repetitions": 10, "src": "Z1", "NPLC": 100}),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
    let readings = v["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 10);
    for (i, r) in readings.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert!(
            (r["value"].as_f64().unwrap() - 10.0000123).abs() < 1e-5,
            "{r}"
        );
    }
    for i in 0..10 {
        let env = next_reading(&mut meas).await;
        assert_eq!(env.from, "labd");
        assert_eq!(env.seq, Some(i));
        for field in [
            "DC-measurement",
            "OriginUID",
            "NPLC",
            "mode",
            "pol",
            "src",
            "unit",
            "index",
            "Ndigits",
            "range",
            "environment",
            "raw",
            "acquired",
        ] {
            assert!(
                env.fields.contains_key(field),
                "reading {i} lacks `{field}`: {:?}",
                env.fields
            );
        }
        assert_eq!(env.fields["OriginUID"][0], "SIM-DCV");
        assert_eq!(env.fields["OriginUID"][2], "labd");
        assert_eq!(env.fields["pol"], "+");
        assert_eq!(env.fields["NPLC"], json!(100.0));
        assert_eq!(env.fields["src"], json!(["Z1"]));
    }
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_simple_message_on_meas_triggers_a_measurement() {
    let (broker, _sim, node) = setup(0.001).await;
    let mut meas = meas_link(&broker.url()).await;
    let c = client(&broker.url()).await;
    c.context()
        .send(
            "meas",
            "labd",
            json!({"cmd": "measure", "src": ["Z3"], "repetitions": 2, "pol": "-"}),
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let env = next_reading(&mut meas).await;
        assert_eq!(env.fields["pol"], "-");
        assert!((env.fields["DC-measurement"].as_f64().unwrap() + 1.0180008).abs() < 1e-5);
    }
    node.stop().await.unwrap();
}

#[tokio::test]
async fn settings_are_validated_and_named() {
    let (broker, _sim, node) = setup(0.001).await;
    let c = client(&broker.url()).await;
    let ctx = c.context();
    let err = ctx
        .request("labd", "measure", json!({"src": "Z9"}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!()
    };
    assert_eq!(error.code, ErrorCode::InvalidParams);
    assert!(error.message.contains("Z9"));
    let err = ctx
        .request("labd", "NPLC", json!({"nplc": 10}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!()
    };
    assert!(error.message.contains("`nplc`"), "{}", error.message);
    let s = ctx
        .request("labd", "NPLC", json!({"NPLC": 100}))
        .await
        .unwrap();
    assert_eq!(s["NPLC"], json!(100.0));
    let err = ctx
        .request(
            "labd",
            "measure",
            json!({"mode": "differential", "src": "Z1"}),
        )
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!()
    };
    assert!(error.message.contains("two standards"), "{}", error.message);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_killed_simulator_is_a_link_error_and_labd_recovers() {
    // Real-ish timing (NPLC 100 takes 2 s simulated, 0.2 s here) so the kill lands mid-measurement.
    let (broker, mut sim, node) = setup(0.1).await;
    let c = client(&broker.url()).await;
    let ctx = c.context().clone();
    let long = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            ctx.request_timeout(
                "labd",
                "measure",
                json!({"repetitions": 20, "src": "Z1", "NPLC": 100}),
                Duration::from_secs(30),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    sim.hp3458.stop();
    // ping answers while the measurement fails.
    ctx.request("labd", "ping", json!({})).await.unwrap();
    let err = long.await.unwrap().unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(
        error.code,
        ErrorCode::Link,
        "the instrument was not reached"
    );
    assert!(
        error.message.starts_with("dmm: TCPIP::127.0.0.1::"),
        "{}",
        error.message
    );
    assert_eq!(error.details.unwrap()["instrument"], "dmm");

    // While it is down, a new measurement fails the same way; once back, labd measures again.
    let err = ctx
        .request("labd", "measure", json!({"repetitions": 1, "src": "Z1"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::Remote { ref error, .. } if error.code == ErrorCode::Link),
        "{err}"
    );
    sim.hp3458.restart().await.unwrap();
    let v = ctx
        .request_timeout(
            "labd",
            "measure",
            json!({"repetitions": 1, "NPLC": 1, "src": "Z1"}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(v["readings"].as_array().unwrap().len(), 1);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn an_error_in_the_instruments_queue_reaches_labds_reply() {
    let (broker, sim, node) = setup(0.001).await;
    let c = client(&broker.url()).await;
    let ctx = c.context();
    ctx.request("labd", "measure", json!({"src": "Z1"}))
        .await
        .unwrap();
    // A measurement's parameters apply to it alone: the defaults are unchanged.
    let settings = ctx.request("labd", "settings", json!({})).await.unwrap();
    assert_eq!(settings["src"], json!([]), "{settings}");
    sim.hp3458.push_error(27, "TRIGGER TOO FAST");
    let err = ctx
        .request("labd", "measure", json!({"repetitions": 2, "src": "Z1"}))
        .await
        .unwrap_err();
    let CallError::Remote { error, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(
        error.code,
        ErrorCode::Hardware,
        "the instrument reported it"
    );
    assert!(
        error.message.contains("TRIGGER TOO FAST"),
        "{}",
        error.message
    );
    let details: Value = error.details.unwrap();
    assert_eq!(details["errors"][0]["code"], 27);
    assert_eq!(details["readings_taken"], 2);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn identify_and_environment_name_every_instrument() {
    let (broker, _sim, node) = setup(0.001).await;
    let c = client(&broker.url()).await;
    let ids = c
        .context()
        .request("labd", "identify", json!({}))
        .await
        .unwrap();
    assert_eq!(
        ids["dmm"],
        format!(
            "HP3458A CALSTR \"{}\"",
            mqttcal_instruments::sim::SIM_CALSTR
        )
    );
    for k in ["scanner-x", "scanner-ref", "env"] {
        assert!(ids[k].is_string(), "{ids}");
    }
    let env = c
        .context()
        .request("labd", "environment", json!({}))
        .await
        .unwrap();
    assert!((env["temperature"].as_f64().unwrap() - 23.0).abs() < 0.2);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_ten_reading_measure_reports_its_progress_before_its_reply() {
    let (broker, _sim, node) = setup(0.01).await;
    // One connection reads both, so their order is the order labd sent them in.
    let mut link = transport(&broker.url())
        .connect(SessionSpec::new(
            "tester",
            vec![
                Subscription::new("progress", QoS::AtMostOnce),
                Subscription::new("reply", QoS::AtMostOnce),
            ],
        ))
        .await
        .unwrap();
    let request = json!({
        "from": "tester", "to": "labd", "request": "measure", "requestid": "tester-1",
        "repetitions": 10, "src": "Z1", "NPLC": 10,
    });
    link.publisher
        .publish(mqttcal_core::transport::Outgoing {
            topic: "request".into(),
            payload: serde_json::to_vec(&request).unwrap().into(),
            qos: QoS::AtMostOnce,
            retain: false,
        })
        .await
        .unwrap();
    let mut steps = Vec::new();
    let reply = loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), link.events.recv())
            .await
            .expect("progress, then the reply")
            .unwrap();
        let Event::Message { topic, payload, .. } = ev else {
            continue;
        };
        let env = Envelope::decode(&payload, usize::MAX).unwrap();
        if env.requestid.as_deref() != Some("tester-1") {
            continue;
        }
        if topic == "reply" {
            break env;
        }
        assert_eq!((env.from.as_str(), env.to.as_str()), ("labd", "tester"));
        assert_eq!(env.fields["n"], 10, "{:?}", env.fields);
        assert!(env.fields["elapsed_s"].as_f64().is_some());
        steps.push(env.fields["i"].as_u64().unwrap());
    };
    assert!(reply.error.is_none(), "{:?}", reply.error);
    assert_eq!(
        reply.reply.unwrap()["readings"].as_array().unwrap().len(),
        10
    );
    assert!(steps.len() >= 5, "progress before the reply: {steps:?}");
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps increase: {steps:?}"
    );
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_failed_call_leaves_the_settings_as_they_were() {
    let (broker, _sim, node) = setup(0.001).await;
    let c = client(&broker.url()).await;
    let ctx = c.context();
    ctx.request("labd", "NPLC", json!({"NPLC": 100}))
        .await
        .unwrap();
    ctx.request("labd", "src", json!({"src": "Z1"}))
        .await
        .unwrap();
    let before = ctx.request("labd", "settings", json!({})).await.unwrap();
    // Refused parameters, a refused setter, and a measurement the DMM fails (10 V on
    // the 0.1 V range overloads it).
    let failing = [
        ("measure", json!({"NPLC": 1, "src": "Z9"})),
        ("measure", json!({"mode": "differential", "range": 0.1})),
        ("NPLC", json!({"NPLC": -1})),
        (
            "measure",
            json!({"range": 0.1, "repetitions": 2, "NPLC": 1}),
        ),
    ];
    for (cap, params) in failing {
        let err = ctx
            .request_timeout("labd", cap, params.clone(), Duration::from_secs(20))
            .await
            .expect_err(&format!("{cap} {params} fails"));
        assert!(matches!(err, CallError::Remote { .. }), "{err}");
        let now = ctx.request("labd", "settings", json!({})).await.unwrap();
        assert_eq!(now, before, "after {cap} {params}");
    }
    // A measurement that succeeds with its own parameters leaves them behind too.
    ctx.request_timeout(
        "labd",
        "measure",
        json!({"NPLC": 1, "repetitions": 2, "pol": "-"}),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    assert_eq!(
        ctx.request("labd", "settings", json!({})).await.unwrap(),
        before
    );
    node.stop().await.unwrap();
}
