//! labd: the report's virtual instrumentation node, a Virtual DMM (a DMM plus two
//! low-thermal scanner matrices) and the lab's environment sensor.
//!
//! Available with the `labd` feature. With the `visa` feature, instruments can also be
//! reached through a vendor VISA library loaded at run time.
//!
//! Capabilities (as requests, and as simple messages on `meas` with `cmd`): `measure`,
//! `repetitions`, `NPLC`, `Ndigits`, `mode`, `pol`, `src`, plus `settings`, `environment`,
//! `identify`, and `lease`/`release` (a calibration job's hold on labd, see [`lease`]).
//! Each reading is published on `meas` as a [`Reading`](mqttcal_messages::Reading)
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

use mqttcal_core::{node, Context, NodeBuilder, NodeError};
use mqttcal_messages::Environment;
use tokio::sync::RwLock;

mod config;
pub mod lease;
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
    // (`get_mut`, no locking). `settings` reads a copy kept apart, so it never waits.
    dmm: std::sync::Mutex<VirtualDmm>,
    leases: lease::Leases,
}

impl Labd {
    fn dmm(&mut self) -> &mut VirtualDmm {
        self.dmm.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `p` to the settings; the new settings. While a job holds labd, only its
    /// holder changes them.
    fn set(&mut self, ctx: &Context, p: MeasureParams) -> Result<Settings, NodeError> {
        self.leases.check_holder(ctx.caller().unwrap_or_default())?;
        let dmm = self.dmm();
        dmm.apply(p)?;
        Ok(dmm.settings.clone())
    }
}

#[node]
impl Labd {
    /// Take readings with the defaults (`settings`), changed for this call only by the
    /// parameters given; each reading is published on `meas`, each step on `progress`
    #[capability(concurrency = 1)]
    async fn measure(
        &mut self,
        p: MeasureParams,
        ctx: &Context,
    ) -> Result<MeasureResult, NodeError> {
        self.leases
            .check(p.job.as_deref(), ctx.caller().unwrap_or_default())?;
        self.dmm().measure(p, ctx).await
    }

    /// Set the default number of readings per `measure` (a refused value changes nothing)
    #[capability]
    async fn repetitions(
        &mut self,
        p: SetRepetitions,
        ctx: &Context,
    ) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                repetitions: Some(p.repetitions),
                ..Default::default()
            },
        )
    }

    /// Set the default integration time, in power-line cycles (a refused value changes nothing)
    #[capability(id = "NPLC")]
    async fn nplc(&mut self, p: SetNplc, ctx: &Context) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                nplc: Some(p.nplc),
                ..Default::default()
            },
        )
    }

    /// Set the default number of digits (a refused value changes nothing)
    #[capability(id = "Ndigits")]
    async fn ndigits(&mut self, p: SetNdigits, ctx: &Context) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                ndigits: Some(p.ndigits),
                ..Default::default()
            },
        )
    }

    /// Set the default mode, absolute or differential (a refused value changes nothing)
    #[capability]
    async fn mode(&mut self, p: SetMode, ctx: &Context) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                mode: Some(p.mode),
                ..Default::default()
            },
        )
    }

    /// Set the default polarity, + or - (a refused value changes nothing)
    #[capability]
    async fn pol(&mut self, p: SetPol, ctx: &Context) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                pol: Some(p.pol),
                ..Default::default()
            },
        )
    }

    /// Set the default standard id(s), two for differential (a refused value changes nothing)
    #[capability]
    async fn src(&mut self, p: SetSrc, ctx: &Context) -> Result<Settings, NodeError> {
        self.set(
            ctx,
            MeasureParams {
                src: Some(p.src),
                ..Default::default()
            },
        )
    }

    /// Temperature, humidity and pressure of the lab
    #[capability]
    async fn environment(&mut self) -> Result<Option<Environment>, NodeError> {
        self.dmm().environment().await
    }
}

/// `identify`: asks the instruments when labd is free, and during a measurement answers
/// at once with what they said last (an instrument is not swapped mid-measurement), or
/// `busy` when they have not been asked yet.
async fn identify(
    labd: Shared,
    last: Arc<std::sync::Mutex<Option<BTreeMap<String, String>>>>,
) -> Result<BTreeMap<String, String>, NodeError> {
    let mut guard = match labd.try_write() {
        Ok(guard) => guard,
        Err(_) => {
            return match last.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                Some(ids) => Ok(ids),
                None => Err(NodeError::busy(
                    "labd is measuring and has not identified its instruments yet; try again when the measurement ends",
                )),
            };
        }
    };
    let ids = guard.dmm().identify().await?;
    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(ids.clone());
    Ok(ids)
}

/// The labd node named `name`, with its instruments as `cfg` says (they connect on first
/// use). Its capabilities also run as commands on `meas` (the report's trigger,
/// `{"to": "labd", "cmd": "measure", ...}`), under the same limits: one measurement at a
/// time, a second one refused as `busy`. At a stop a running measurement is cancelled and
/// every channel is opened.
pub fn node(name: &str, cfg: LabdConfig) -> NodeBuilder {
    let leases = lease::Leases::new(cfg.lease_from.clone());
    let outbox = cfg.outbox.clone();
    let dmm = VirtualDmm::new(cfg, name);
    let shown = dmm.shown_settings();
    let labd: Shared = Arc::new(RwLock::new(Labd {
        dmm: std::sync::Mutex::new(dmm),
        leases: leases.clone(),
    }));
    let released = leases.clone();
    let stop = labd.clone();
    let for_identify = labd.clone();
    let identities = Arc::new(std::sync::Mutex::new(None));
    let builder = match outbox {
        Some(outbox) => NodeBuilder::new(name).outbox(outbox),
        None => NodeBuilder::new(name),
    };
    builder
        .register_shared(labd)
        // Outside `#[node]`: it must not wait for a running measurement.
        .capability(
            "settings",
            "The defaults of `measure`, as the setters left them (answered during a measurement too)",
            move |_: mqttcal_core::NoParams, _ctx| {
                let shown = shown.clone();
                async move {
                    Ok::<_, NodeError>(shown.lock().unwrap_or_else(|e| e.into_inner()).clone())
                }
            },
        )
        .capability(
            "identify",
            "The identification of every instrument (during a measurement, as they gave it last)",
            move |_: mqttcal_core::NoParams, _ctx| {
                identify(for_identify.clone(), identities.clone())
            },
        )
        .capability(
            "lease",
            "Take labd for a calibration job (renew before it lapses): other jobs' measurements get busy",
            move |p: lease::LeaseParams, ctx: Context| {
                let r = leases.take(&p, ctx.caller().unwrap_or_default());
                async move { r }
            },
        )
        .capability(
            "release",
            "End a job's lease",
            move |p: lease::ReleaseParams, ctx: Context| {
                let r = released.release(&p, ctx.caller().unwrap_or_default());
                async move { r }
            },
        )
        .commands_on(mqttcal_core::topics::MEAS)
        .on_stop(move |_| async move { stop.write().await.dmm().make_safe().await })
}
