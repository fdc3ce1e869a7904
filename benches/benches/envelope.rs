//! Envelope encode and decode: a request, a reply and a labd-style reading.

use criterion::{criterion_group, criterion_main, Criterion};
use mqttcal_core::clock::{request_id, Clock};
use mqttcal_core::envelope::Envelope;
use mqttcal_core::envelope::DEFAULT_MAX_MESSAGE_SIZE;
use serde_json::json;
use std::hint::black_box;

fn reading() -> Envelope {
    let mut env = Envelope::new("labd", "*");
    env.timestamp = Some(Clock::new().next());
    env.seq = Some(41);
    env.epoch = Some(1_700_000_000_000_000);
    for (k, v) in [
        ("DC-measurement", json!(10.000_012_345_6)),
        ("OriginUID", json!(["INRIM-DCV", "lab-pc-1", "labd"])),
        ("NPLC", json!(100)),
        ("mode", json!("absolute")),
        ("pol", json!("+")),
        ("src", json!(["Z1"])),
        ("unit", json!("V")),
        ("raw", json!("+1.00000123456E+01")),
    ] {
        env.fields.insert(k.into(), v);
    }
    env
}

fn request() -> Envelope {
    let clock = Clock::new();
    let ts = clock.next();
    let mut env = Envelope::new("cald", "labd");
    env.timestamp = Some(ts);
    env.request = Some("measure".into());
    env.requestid = Some(request_id("cald", ts));
    env.fields.insert("repetitions".into(), json!(10));
    env
}

fn bench(c: &mut Criterion) {
    for (name, env) in [("request", request()), ("reading", reading())] {
        let bytes = env.encode(DEFAULT_MAX_MESSAGE_SIZE).unwrap();
        c.bench_function(&format!("encode_{name}"), |b| {
            b.iter(|| black_box(&env).encode(DEFAULT_MAX_MESSAGE_SIZE).unwrap())
        });
        c.bench_function(&format!("decode_{name}"), |b| {
            b.iter(|| Envelope::decode(black_box(&bytes), DEFAULT_MAX_MESSAGE_SIZE).unwrap())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
