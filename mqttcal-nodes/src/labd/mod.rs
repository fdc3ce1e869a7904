//! labd: the report's virtual instrumentation node, a Virtual DMM (a DMM plus two
//! low-thermal scanner matrices) and the lab's environment sensor.
//!
//! Capabilities (as requests, and as simple messages on `meas` with `cmd`): `measure`,
//! `repetitions`, `NPLC`, `Ndigits`, `mode`, `pol`, `src`, plus `settings`, `environment`
//! and `identify`. Each reading is published on `meas` with the report's fields
//! (`DC-measurement`, `OriginUID`, `NPLC`, `mode`, `pol`, `src`) and ours (`unit`, `index`,
//! `Ndigits`, `range`, `acquired`, `raw`, `environment`, `seq`, `epoch`).

use std::future::Future;
use std::sync::Arc;

use mqttcal_core::{Context, Envelope, NoParams, NodeBuilder, NodeError};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

pub mod config;
pub mod params;
mod vdmm;

pub use config::LabdConfig;
pub use vdmm::VirtualDmm;

use params::{
    MeasureParams, SetMode, SetNdigits, SetNplc, SetPol, SetRepetitions, SetSrc, Settings,
};

type Shared = Arc<Mutex<VirtualDmm>>;

fn cap<P, R, F, Fut>(b: NodeBuilder, v: &Shared, id: &str, description: &str, f: F) -> NodeBuilder
where
    P: DeserializeOwned + JsonSchema + Send + 'static,
    R: Serialize + JsonSchema + 'static,
    F: Fn(Shared, P, Context) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = Result<R, NodeError>> + Send + 'static,
{
    let v = v.clone();
    b.capability(id, description, move |p: P, ctx| f(v.clone(), p, ctx))
}

async fn set(v: Shared, p: MeasureParams) -> Result<Settings, NodeError> {
    let mut g = v.lock().await;
    g.apply(p)?;
    Ok(g.settings.clone())
}

/// The labd node named `name`.
pub fn node(name: &str, cfg: LabdConfig) -> NodeBuilder {
    let v: Shared = Arc::new(Mutex::new(VirtualDmm::new(cfg, name)));
    let mut b = NodeBuilder::new(name);
    b = cap(
        b,
        &v,
        "measure",
        "Perform a configured measurement; each reading is also published on `meas`",
        |v, p: MeasureParams, ctx| async move { v.lock().await.measure(p, &ctx).await },
    );
    b = cap(
        b,
        &v,
        "repetitions",
        "Set the number of repeated measurements",
        |v, p: SetRepetitions, _| {
            set(
                v,
                MeasureParams {
                    repetitions: Some(p.repetitions),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "NPLC",
        "Set the integration time, in power-line cycles",
        |v, p: SetNplc, _| {
            set(
                v,
                MeasureParams {
                    nplc: Some(p.nplc),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "Ndigits",
        "Set the number of digits",
        |v, p: SetNdigits, _| {
            set(
                v,
                MeasureParams {
                    ndigits: Some(p.ndigits),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "mode",
        "Set the measurement mode (absolute, differential)",
        |v, p: SetMode, _| {
            set(
                v,
                MeasureParams {
                    mode: Some(p.mode),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "pol",
        "Set the measurement polarity (+ / -)",
        |v, p: SetPol, _| {
            set(
                v,
                MeasureParams {
                    pol: Some(p.pol),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "src",
        "Set the voltage standard id (two standards for differential measurements)",
        |v, p: SetSrc, _| {
            set(
                v,
                MeasureParams {
                    src: Some(p.src),
                    ..Default::default()
                },
            )
        },
    );
    b = cap(
        b,
        &v,
        "settings",
        "The Virtual DMM's present settings",
        |v, _: NoParams, _| async move { Ok(v.lock().await.settings.clone()) },
    );
    b = cap(
        b,
        &v,
        "environment",
        "Temperature, humidity and pressure of the lab",
        |v, _: NoParams, _| async move { v.lock().await.environment().await },
    );
    b = cap(
        b,
        &v,
        "identify",
        "The identification of every instrument",
        |v, _: NoParams, _| async move { v.lock().await.identify().await },
    );
    let on_meas = v.clone();
    let stop = v.clone();
    let me = name.to_owned();
    b.on_topic(mqttcal_core::topics::MEAS, move |env: Envelope, ctx| {
        let v = on_meas.clone();
        let me = me.clone();
        async move { on_meas_message(v, env, ctx, &me).await }
    })
    .on_stop(move |_| async move { stop.lock().await.make_safe().await })
}

/// A simple message on `meas` with `cmd`: the same operations as the requests.
async fn on_meas_message(v: Shared, env: Envelope, ctx: Context, me: &str) {
    let Some(cmd) = env.cmd.as_deref() else {
        return;
    };
    if !env.is_for(me) {
        return;
    }
    let fields = serde_json::Value::Object(env.fields.clone());
    let result = match cmd {
        "measure" => match serde_json::from_value::<MeasureParams>(fields) {
            Ok(p) => v.lock().await.measure(p, &ctx).await.map(|_| ()),
            Err(e) => Err(NodeError::invalid_params(e.to_string())),
        },
        "repetitions" | "NPLC" | "Ndigits" | "mode" | "pol" | "src" | "range" => {
            match serde_json::from_value::<MeasureParams>(fields) {
                Ok(p) => v.lock().await.apply(p),
                Err(e) => Err(NodeError::invalid_params(e.to_string())),
            }
        }
        _ => return,
    };
    if let Err(e) = result {
        tracing::warn!(from = %env.from, cmd, "meas command failed: {e}");
    }
}
