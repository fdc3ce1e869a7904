//! labd: the report's virtual instrumentation node, a Virtual DMM (a DMM plus two
//! low-thermal scanner matrices) and the lab's environment sensor.
//!
//! Capabilities (as requests, and as simple messages on `meas` with `cmd`): `measure`,
//! `repetitions`, `NPLC`, `Ndigits`, `mode`, `pol`, `src`, plus `settings`, `environment`
//! and `identify`. Each reading is published on `meas` as a [`Reading`](mqttcal_messages::Reading)
//! with the report's fields (`DC-measurement`, `OriginUID`, `NPLC`, `mode`, `pol`, `src`) and
//! ours (`unit`, `index`, `Ndigits`, `range`, `acquired`, `raw`, `environment`).
//!
//! ```no_run
//! # async fn demo(transport: &dyn mqttcal_core::transport::Transport, cfg: mqttcal_nodes::labd::LabdConfig) -> Result<(), mqttcal_core::RunError> {
//! let node = mqttcal_nodes::labd::node("labd", cfg).build().start(transport).await?;
//! # node.stop().await
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use mqttcal_core::envelope::Envelope;
use mqttcal_core::{node, Context, NodeBuilder, NodeError};
use mqttcal_messages::Environment;
use tokio::sync::RwLock;

mod config;
pub mod params;
mod vdmm;

pub use config::{DmmDriver, InstrumentConfig, LabdConfig};
pub use vdmm::VirtualDmm;

use params::{
    MeasureParams, MeasureResult, SetMode, SetNdigits, SetNplc, SetPol, SetRepetitions, SetSrc,
    Settings,
};

type Shared = Arc<RwLock<Labd>>;

/// The labd node's capabilities: the Virtual DMM's operations. A call that changes a
/// setting, or measures, holds the Virtual DMM alone.
#[derive(Debug)]
pub struct Labd {
    // The instrument drivers may move between threads but not be shared (`Send`, not
    // `Sync`), while `#[node]` shares the value behind a read-write lock: the mutex makes it
    // shareable. Calls that change the Virtual DMM reach it through `&mut self`
    // (`get_mut`, no locking); `settings` locks it for a copy.
    dmm: std::sync::Mutex<VirtualDmm>,
}

impl Labd {
    fn dmm(&mut self) -> &mut VirtualDmm {
        self.dmm.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `p` to the settings; the new settings.
    fn set(&mut self, p: MeasureParams) -> Result<Settings, NodeError> {
        let dmm = self.dmm();
        dmm.apply(p)?;
        Ok(dmm.settings.clone())
    }
}

#[node]
impl Labd {
    /// Perform a configured measurement; each reading is also published on `meas`
    #[capability]
    async fn measure(
        &mut self,
        p: MeasureParams,
        ctx: &Context,
    ) -> Result<MeasureResult, NodeError> {
        self.dmm().measure(p, ctx).await
    }

    /// Set the number of repeated measurements
    #[capability]
    async fn repetitions(&mut self, p: SetRepetitions) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            repetitions: Some(p.repetitions),
            ..Default::default()
        })
    }

    /// Set the integration time, in power-line cycles
    #[capability(id = "NPLC")]
    async fn nplc(&mut self, p: SetNplc) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            nplc: Some(p.nplc),
            ..Default::default()
        })
    }

    /// Set the number of digits
    #[capability(id = "Ndigits")]
    async fn ndigits(&mut self, p: SetNdigits) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            ndigits: Some(p.ndigits),
            ..Default::default()
        })
    }

    /// Set the measurement mode (absolute, differential)
    #[capability]
    async fn mode(&mut self, p: SetMode) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            mode: Some(p.mode),
            ..Default::default()
        })
    }

    /// Set the measurement polarity (+ / -)
    #[capability]
    async fn pol(&mut self, p: SetPol) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            pol: Some(p.pol),
            ..Default::default()
        })
    }

    /// Set the voltage standard id (two standards for differential measurements)
    #[capability]
    async fn src(&mut self, p: SetSrc) -> Result<Settings, NodeError> {
        self.set(MeasureParams {
            src: Some(p.src),
            ..Default::default()
        })
    }

    /// The Virtual DMM's present settings
    #[capability]
    async fn settings(&self) -> Result<Settings, NodeError> {
        let dmm = self.dmm.lock().unwrap_or_else(|e| e.into_inner());
        Ok(dmm.settings.clone())
    }

    /// Temperature, humidity and pressure of the lab
    #[capability]
    async fn environment(&mut self) -> Result<Option<Environment>, NodeError> {
        self.dmm().environment().await
    }

    /// The identification of every instrument
    #[capability]
    async fn identify(&mut self) -> Result<BTreeMap<String, String>, NodeError> {
        self.dmm().identify().await
    }
}

/// The labd node named `name`, with its instruments as `cfg` says (they connect on first
/// use). Triggers on `meas` are served too; at a stop every channel is opened.
pub fn node(name: &str, cfg: LabdConfig) -> NodeBuilder {
    let labd: Shared = Arc::new(RwLock::new(Labd {
        dmm: std::sync::Mutex::new(VirtualDmm::new(cfg, name)),
    }));
    let on_meas = labd.clone();
    let stop = labd.clone();
    let me = name.to_owned();
    NodeBuilder::new(name)
        .register_shared(labd)
        .on_topic(mqttcal_core::topics::MEAS, move |env: Envelope, ctx| {
            let labd = on_meas.clone();
            let me = me.clone();
            async move { on_meas_message(labd, env, ctx, &me).await }
        })
        .on_stop(move |_| async move { stop.write().await.dmm().make_safe().await })
}

/// A simple message on `meas` with `cmd`: the same operations as the requests.
async fn on_meas_message(labd: Shared, env: Envelope, ctx: Context, me: &str) {
    let Some(cmd) = env.cmd.as_deref() else {
        return;
    };
    if !env.is_for(me) {
        return;
    }
    let fields = serde_json::Value::Object(env.fields.clone());
    let result = match cmd {
        "measure" => match serde_json::from_value::<MeasureParams>(fields) {
            Ok(p) => labd.write().await.dmm().measure(p, &ctx).await.map(|_| ()),
            Err(e) => Err(NodeError::invalid_params(e.to_string())),
        },
        "repetitions" | "NPLC" | "Ndigits" | "mode" | "pol" | "src" | "range" => {
            match serde_json::from_value::<MeasureParams>(fields) {
                Ok(p) => labd.write().await.dmm().apply(p),
                Err(e) => Err(NodeError::invalid_params(e.to_string())),
            }
        }
        _ => return,
    };
    if let Err(e) = result {
        tracing::warn!(from = %env.from, cmd, "meas command failed: {e}");
    }
}
