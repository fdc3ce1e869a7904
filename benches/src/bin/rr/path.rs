//! `--path`: where a round trip's time goes. The echo (raw) and the capability (mqttcal)
//! note when each request reaches them, which splits a round trip into the request's way
//! (client, broker, node up to the handler) and the reply's way (handler, broker, client).
//! Raw and mqttcal calls alternate one by one, so that both see the same machine.

use std::time::Duration;

use mqttcal_core::transport::QoS;
use serde_json::{json, Value};

use crate::rigs::{OursRig, RawRig, Stamp};

/// The median of each way, for both series at `qos`, over `n` round trips each.
pub(crate) async fn run(url: &str, host: &str, port: u16, qos: QoS, n: usize) -> Value {
    let raw_qos = match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    };
    let raw_stamp = Stamp::default();
    let ours_stamp = Stamp::default();
    let mut raw = RawRig::start(host, port, raw_qos, Some(raw_stamp.clone())).await;
    let mut ours = OursRig::start(url, qos, Some(ours_stamp.clone())).await;
    raw.series(200).await;
    ours.series(200).await;
    let (mut raw_ways, mut ours_ways) = (Ways::default(), Ways::default());
    for _ in 0..n {
        let (start, end) = raw.legs().await;
        raw_ways.add(start, end, &raw_stamp);
        let (start, end) = ours.legs().await;
        ours_ways.add(start, end, &ours_stamp);
    }
    raw.stop().await;
    ours.stop().await;
    json!({ "raw": raw_ways.json(), "mqttcal": ours_ways.json() })
}

/// The two ways of each round trip.
#[derive(Default)]
struct Ways {
    request: Vec<Duration>,
    reply: Vec<Duration>,
}

impl Ways {
    fn add(&mut self, start: std::time::Instant, end: std::time::Instant, stamp: &Stamp) {
        let Some(at) = stamp.lock().unwrap().take() else {
            return;
        };
        self.request.push(at.saturating_duration_since(start));
        self.reply.push(end.saturating_duration_since(at));
    }

    fn json(&mut self) -> Value {
        let p50 = |v: &mut Vec<Duration>| {
            v.sort();
            v.get(v.len() / 2)
                .map_or(0.0, |d| (d.as_secs_f64() * 1e7).round() / 10.0)
        };
        json!({
            "request_p50_us": p50(&mut self.request),
            "reply_p50_us": p50(&mut self.reply),
            "samples": self.request.len(),
        })
    }
}
