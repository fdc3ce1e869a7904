//! `sim-lab`: the simulated instruments alone, on chosen ports.

use clap::Args;
use mqttcal_instruments::sim::{LabParams, SimLab};

use super::run::shutdown_signal;
use super::Failure;

/// Arguments of `sim-lab`.
#[derive(Debug, Args, Clone)]
pub(crate) struct SimLabArgs {
    /// Ports: 3458A, SCPI DMM, scanner x, scanner ref, sensor (0: free ports)
    #[arg(long, value_delimiter = ',', default_value = "0,0,0,0,0")]
    ports: Vec<u16>,
    /// Wall-clock seconds per simulated second (1: real instrument timing)
    #[arg(long, default_value_t = 1.0)]
    time_factor: f64,
    /// Seed of the simulated noise
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Starts the simulators and returns them with a `labd` configuration section for them.
pub(crate) async fn start(a: &SimLabArgs) -> Result<(SimLab, String), Failure> {
    let params = a.params()?;
    let lab = SimLab::start_on(params, [127, 0, 0, 1].into(), a.port_array()?)
        .await
        .map_err(|e| Failure::connect(format!("cannot start the simulators: {e}")))?;
    let section = yaml_section(&mqttcal_nodes::labd::LabdConfig::for_sim_lab(&lab));
    Ok((lab, section))
}

impl SimLabArgs {
    /// Defaults for `lab`: free ports, the given time factor.
    #[cfg(feature = "broker")]
    pub(crate) fn free(time_factor: f64) -> Self {
        Self {
            ports: vec![0; 5],
            time_factor,
            seed: 1,
        }
    }

    fn params(&self) -> Result<LabParams, Failure> {
        if !(self.time_factor > 0.0 && self.time_factor.is_finite()) {
            return Err(Failure::usage("--time-factor must be a positive number"));
        }
        Ok(LabParams {
            seed: self.seed,
            time_factor: self.time_factor,
            ..LabParams::default()
        })
    }

    fn port_array(&self) -> Result<[u16; 5], Failure> {
        self.ports
            .clone()
            .try_into()
            .map_err(|_| Failure::usage("--ports takes five ports"))
    }
}

fn yaml_section(c: &mqttcal_nodes::labd::LabdConfig) -> String {
    let channels: Vec<String> = c
        .channels
        .iter()
        .map(|(id, ch)| format!("{id}: {ch}"))
        .collect();
    let res = |i: &Option<mqttcal_nodes::labd::InstrumentConfig>| {
        i.as_ref().map_or(String::new(), |i| i.resource.clone())
    };
    format!(
        "labd:\n  lab-id: {}\n  dmm: {{ driver: hp3458, resource: \"{}\" }}\n  scanner-x: {{ resource: \"{}\" }}\n  scanner-ref: {{ resource: \"{}\" }}\n  env: {{ resource: \"{}\" }}\n  channels: {{ {} }}\n",
        c.lab_id,
        c.dmm.resource,
        c.scanner_x.resource,
        res(&c.scanner_ref),
        res(&c.env),
        channels.join(", ")
    )
}

pub(crate) async fn sim_lab(a: SimLabArgs) -> Result<(), Failure> {
    let (lab, section) = start(&a).await?;
    let text = format!(
        "simulated instruments (time factor {}):\n  3458A DMM     {}\n  SCPI DMM      {}\n  scanner x     {}\n  scanner ref   {}\n  environment   {}\na labd configuration for them:\n{section}\n",
        a.time_factor,
        lab.hp3458.resource(),
        lab.scpi_dmm.resource(),
        lab.scanner_x.resource(),
        lab.scanner_ref.resource(),
        lab.env.resource(),
    );
    // The simulators keep running when whoever started them stopped reading (a closed pipe).
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut out, text.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut out));
    drop(out);
    shutdown_signal().await;
    Ok(())
}
