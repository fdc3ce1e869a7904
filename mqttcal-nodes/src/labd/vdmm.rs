//! The Virtual DMM: a DMM plus two scanner matrices plus an environment sensor.

use std::time::Duration;

use mqttcal_core::clock::Timestamp;
use mqttcal_core::{error_chain, Context, NodeError};
use mqttcal_instruments::drivers::{
    Dmm, DmmConfig, EnvSensor, Hp3458, InstrumentError, ScpiDmm, ScpiEnvSensor, ScpiScanner, Switch,
};
use mqttcal_instruments::interface::{Interface, InterfaceError, OpenOptions};
use mqttcal_messages::{Environment, Mode, Polarity, Reading, Sources};
use serde_json::json;

use super::config::{DmmDriver, InstrumentConfig, LabdConfig};
use super::params::{MeasureParams, MeasureResult, ReadingOut, Settings};

/// What the scanners connect now: (x channel, negative, reference channel).
type Route = (usize, bool, Option<usize>);

/// The Virtual DMM of labd.
#[derive(Debug)]
pub struct VirtualDmm {
    cfg: LabdConfig,
    origin: [String; 3],
    pub(crate) settings: Settings,
    /// A copy of `settings` that `settings` reads without waiting for a measurement.
    shown: std::sync::Arc<std::sync::Mutex<Settings>>,
    dmm: Option<Box<dyn Dmm>>,
    scanner_x: Option<Box<dyn Switch>>,
    scanner_ref: Option<Box<dyn Switch>>,
    env: Option<Box<dyn EnvSensor>>,
    applied: Option<DmmConfig>,
    route: Option<Route>,
}

async fn open(
    cfg: &InstrumentConfig,
    adapter: Option<&str>,
    timeout: f64,
) -> Result<Box<dyn Interface>, InterfaceError> {
    let options = OpenOptions {
        timeout: Duration::from_secs_f64(timeout),
        baud: cfg.baud.unwrap_or(9600),
        gpib_adapter: adapter.map(str::to_owned),
    };
    mqttcal_instruments::interface::open(&cfg.resource, &options).await
}

fn link_error(instrument: &str, e: &InterfaceError) -> NodeError {
    NodeError::link(format!("{instrument}: {}", error_chain(e)))
        .with_details(json!({ "instrument": instrument }))
}

fn device_error(instrument: &str, e: &InstrumentError) -> NodeError {
    let errors = match e {
        InstrumentError::Reported(list) => list
            .iter()
            .map(|d| json!({ "code": d.code, "message": d.message }))
            .collect(),
        _ => Vec::new(),
    };
    NodeError::hardware(format!("{instrument} reported: {e}"))
        .with_details(json!({ "instrument": instrument, "errors": errors }))
}

/// Unwraps a two-layer outcome, dropping the link on a link failure.
macro_rules! outcome {
    ($self:ident . $slot:ident, $name:expr, $call:expr) => {
        match $call {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(device_error($name, &e)),
            Err(e) => {
                $self.$slot = None;
                $self.route = None;
                $self.applied = None;
                return Err(link_error($name, &e));
            }
        }
    };
}

impl VirtualDmm {
    /// A Virtual DMM for node `node` with `cfg`; instruments connect on first use.
    pub fn new(cfg: LabdConfig, node: &str) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        Self {
            origin: [cfg.lab_id.clone(), host, node.to_owned()],
            cfg,
            settings: Settings::default(),
            shown: std::sync::Arc::default(),
            dmm: None,
            scanner_x: None,
            scanner_ref: None,
            env: None,
            applied: None,
            route: None,
        }
    }

    async fn dmm(&mut self) -> Result<&mut Box<dyn Dmm>, NodeError> {
        if self.dmm.is_none() {
            let c = &self.cfg.dmm;
            let link = open(
                c,
                self.cfg.gpib_adapter.as_deref(),
                self.cfg.connect_timeout,
            )
            .await
            .map_err(|e| link_error("dmm", &e))?;
            self.dmm = Some(match c.driver.unwrap_or(DmmDriver::Scpi) {
                DmmDriver::Hp3458 => Box::new(Hp3458::new(link)),
                DmmDriver::Scpi => Box::new(ScpiDmm::new(link)),
            });
            self.applied = None;
        }
        Ok(self.dmm.as_mut().expect("connected above"))
    }

    async fn scanner(&mut self, reference: bool) -> Result<&mut Box<dyn Switch>, NodeError> {
        let (name, cfg) = if reference {
            let c = self.cfg.scanner_ref.clone().ok_or_else(|| {
                NodeError::invalid_params(
                    "differential mode needs `scanner-ref` in labd's configuration",
                )
            })?;
            ("scanner-ref", c)
        } else {
            ("scanner-x", self.cfg.scanner_x.clone())
        };
        let slot = if reference {
            &mut self.scanner_ref
        } else {
            &mut self.scanner_x
        };
        if slot.is_none() {
            let link = open(
                &cfg,
                self.cfg.gpib_adapter.as_deref(),
                self.cfg.connect_timeout,
            )
            .await
            .map_err(|e| link_error(name, &e))?;
            *slot = Some(Box::new(ScpiScanner::new(link)));
            self.route = None;
        }
        Ok(slot.as_mut().expect("connected above"))
    }

    async fn env_sensor(&mut self) -> Result<Option<&mut Box<dyn EnvSensor>>, NodeError> {
        let Some(cfg) = self.cfg.env.clone() else {
            return Ok(None);
        };
        if self.env.is_none() {
            let link = open(
                &cfg,
                self.cfg.gpib_adapter.as_deref(),
                self.cfg.connect_timeout,
            )
            .await
            .map_err(|e| link_error("env", &e))?;
            self.env = Some(Box::new(ScpiEnvSensor::new(link)));
        }
        Ok(self.env.as_mut())
    }

    /// Applies `p` to the settings (the defaults of later calls), checking it against the
    /// configuration.
    pub fn apply(&mut self, p: MeasureParams) -> Result<(), NodeError> {
        let s = self.with(p)?;
        *self.shown.lock().unwrap_or_else(|e| e.into_inner()) = s.clone();
        self.settings = s;
        Ok(())
    }

    /// The settings with `p` applied, checked against the configuration.
    fn with(&self, p: MeasureParams) -> Result<Settings, NodeError> {
        let mut s = self.settings.clone();
        if let Some(v) = p.repetitions {
            if !(1..=100_000).contains(&v) {
                return Err(NodeError::invalid_params(
                    "`repetitions` must be 1 to 100000",
                ));
            }
            s.repetitions = v;
        }
        if let Some(v) = p.nplc {
            // The shortest integration DMMs offer is about 1e-4 NPLC (a 3458A's few µs).
            if !(1e-4..=1000.0).contains(&v) {
                return Err(NodeError::invalid_params("`NPLC` must be 0.0001 to 1000"));
            }
            s.nplc = v;
        }
        if let Some(v) = p.ndigits {
            if !(3..=8).contains(&v) {
                return Err(NodeError::invalid_params("`Ndigits` must be 3 to 8"));
            }
            s.ndigits = v;
        }
        if let Some(v) = p.range {
            if !(v > 0.0 && v <= 1000.0) {
                return Err(NodeError::invalid_params(
                    "`range` must be above 0 V and at most 1000 V",
                ));
            }
            s.range = v;
        }
        if let Some(v) = p.mode {
            s.mode = v;
        }
        if let Some(v) = p.pol {
            s.pol = v;
        }
        if let Some(v) = p.src {
            let v = v.into_vec();
            if let Some(unknown) = v.iter().find(|id| !self.cfg.channels.contains_key(*id)) {
                let known: Vec<&str> = self.cfg.channels.keys().map(String::as_str).collect();
                return Err(NodeError::invalid_params(format!(
                    "unknown standard `{unknown}` in `src` (known: {})",
                    known.join(", ")
                )));
            }
            s.src = v;
        }
        Ok(s)
    }

    /// The settings as last applied, readable while a measurement holds the Virtual DMM.
    pub fn shown_settings(&self) -> std::sync::Arc<std::sync::Mutex<Settings>> {
        self.shown.clone()
    }

    fn route_for(&self) -> Result<Route, NodeError> {
        let s = &self.settings;
        let ch = |id: &String| self.cfg.channels[id];
        let negative = s.pol == Polarity::Negative;
        match (s.mode, s.src.as_slice()) {
            (Mode::Absolute, [x]) => Ok((ch(x), negative, None)),
            (Mode::Differential, [x, r]) => Ok((ch(x), negative, Some(ch(r)))),
            (Mode::Absolute, _) => Err(NodeError::invalid_params(
                "absolute mode needs one standard in `src`",
            )),
            (Mode::Differential, _) => Err(NodeError::invalid_params(
                "differential mode needs two standards in `src` (measured, reference)",
            )),
        }
    }

    /// Sets up the DMM and the scanners for the present settings.
    async fn prepare(&mut self) -> Result<(), NodeError> {
        let route = self.route_for()?;
        let config = DmmConfig {
            range: self.settings.range,
            nplc: self.settings.nplc,
            ndigits: self.settings.ndigits,
        };
        if self.applied != Some(config) {
            let dmm = self.dmm().await?;
            outcome!(self.dmm, "dmm", dmm.configure(&config).await);
            self.applied = Some(config);
        }
        if self.route != Some(route) {
            let (x, negative, reference) = route;
            let sx = self.scanner(false).await?;
            outcome!(self.scanner_x, "scanner-x", sx.connect(x).await);
            let sx = self.scanner(false).await?;
            outcome!(self.scanner_x, "scanner-x", sx.set_polarity(negative).await);
            match reference {
                Some(r) => {
                    let sr = self.scanner(true).await?;
                    outcome!(self.scanner_ref, "scanner-ref", sr.connect(r).await);
                }
                None if self.cfg.scanner_ref.is_some() => {
                    let sr = self.scanner(true).await?;
                    outcome!(self.scanner_ref, "scanner-ref", sr.open_all().await);
                }
                None => {}
            }
            self.route = Some(route);
        }
        Ok(())
    }

    /// Lab conditions, if a sensor is configured.
    pub async fn environment(&mut self) -> Result<Option<Environment>, NodeError> {
        let Some(sensor) = self.env_sensor().await? else {
            return Ok(None);
        };
        let e = outcome!(self.env, "env", sensor.read().await);
        Ok(Some(Environment {
            temperature: e.temperature,
            humidity: e.humidity,
            pressure: e.pressure,
        }))
    }

    /// The identification of every configured instrument.
    pub async fn identify(
        &mut self,
    ) -> Result<std::collections::BTreeMap<String, String>, NodeError> {
        let mut out = std::collections::BTreeMap::new();
        let dmm = self.dmm().await?;
        let id = dmm.identify().await;
        out.insert("dmm".into(), self.idn("dmm", id)?);
        let sx = self.scanner(false).await?;
        let id = sx.identify().await;
        out.insert("scanner-x".into(), self.idn("scanner-x", id)?);
        if self.cfg.scanner_ref.is_some() {
            let sr = self.scanner(true).await?;
            let id = sr.identify().await;
            out.insert("scanner-ref".into(), self.idn("scanner-ref", id)?);
        }
        if let Some(sensor) = self.env_sensor().await? {
            let id = sensor.identify().await;
            out.insert("env".into(), self.idn("env", id)?);
        }
        Ok(out)
    }

    fn idn(&mut self, name: &str, r: Result<String, InterfaceError>) -> Result<String, NodeError> {
        r.map_err(|e| {
            match name {
                "dmm" => self.dmm = None,
                "scanner-x" => self.scanner_x = None,
                "scanner-ref" => self.scanner_ref = None,
                _ => self.env = None,
            }
            self.route = None;
            self.applied = None;
            link_error(name, &e)
        })
    }

    /// Takes the configured readings, publishing each on `meas` as it comes.
    /// The parameters apply to this call only: the settings are the same after it as
    /// before (the setters `NPLC`, `mode`, ... change them).
    pub async fn measure(
        &mut self,
        p: MeasureParams,
        ctx: &Context,
    ) -> Result<MeasureResult, NodeError> {
        let defaults = self.settings.clone();
        let result = self.measure_with(p, ctx).await;
        self.settings = defaults;
        result
    }

    async fn measure_with(
        &mut self,
        p: MeasureParams,
        ctx: &Context,
    ) -> Result<MeasureResult, NodeError> {
        let job = p.job.clone();
        if job.as_ref().is_some_and(|j| j.is_empty() || j.len() > 128) {
            return Err(NodeError::invalid_params(
                "`job` must be 1 to 128 characters",
            ));
        }
        self.settings = self.with(p)?;
        self.prepare().await?;
        let environment = self.environment().await?;
        let settings = self.settings.clone();
        let n = u64::from(settings.repetitions);
        ctx.progress(0, n, Some(&format!("{n} reading(s) to take")))
            .await;
        let mut readings = Vec::with_capacity(settings.repetitions as usize);
        for index in 0..settings.repetitions {
            let dmm = self.dmm().await?;
            let r = outcome!(self.dmm, "dmm", dmm.read().await);
            let acquired = Timestamp::now().as_secs_f64();
            let reading = Reading {
                unit: Some("V".into()),
                origin_uid: Some(self.origin.to_vec()),
                nplc: Some(settings.nplc),
                ndigits: Some(settings.ndigits),
                range: Some(settings.range),
                mode: Some(settings.mode),
                pol: Some(settings.pol),
                src: Some(Sources::Many(settings.src.clone())),
                index: Some(index),
                acquired: Some(acquired),
                raw: Some(r.raw.clone()),
                environment,
                job: job.clone(),
                ..Reading::new(r.value)
            };
            ctx.publish(Reading::TOPIC, &reading)
                .await
                .map_err(NodeError::from)?;
            readings.push(ReadingOut {
                index,
                value: r.value,
                raw: r.raw,
                acquired,
            });
            let done = u64::from(index) + 1;
            ctx.progress(done, n, Some(&format!("reading {done} of {n}")))
                .await;
        }
        let dmm = self.dmm().await?;
        let errors = match dmm.errors().await {
            Ok(e) => e,
            Err(e) => {
                self.dmm = None;
                self.applied = None;
                return Err(link_error("dmm", &e));
            }
        };
        if !errors.is_empty() {
            let taken = readings.len();
            let err = device_error("dmm", &InstrumentError::Reported(errors));
            let mut details = err.details.clone().unwrap_or_default();
            details["readings_taken"] = json!(taken);
            return Err(err.with_details(details));
        }
        Ok(MeasureResult {
            readings,
            settings,
            environment,
        })
    }

    /// Opens every channel: leaves the standards disconnected.
    pub async fn make_safe(&mut self) {
        if let Some(s) = self.scanner_x.as_mut() {
            let _ = s.open_all().await;
        }
        if let Some(s) = self.scanner_ref.as_mut() {
            let _ = s.open_all().await;
        }
        self.route = None;
    }
}
