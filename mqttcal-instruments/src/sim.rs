//! Simulated instruments: one deterministic physical model of a DC-voltage lab, and each
//! instrument as a real TCP server speaking its own command language.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mqttcal_instruments::sim::{LabParams, SimLab};
//! let lab = SimLab::start(LabParams::default(), "127.0.0.1".parse().unwrap()).await?;
//! println!("3458A at {}", lab.hp3458.resource());
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

mod env;
mod flicker;
mod hp3458;
mod model;
mod prologix;
mod rng;
mod scanner;
mod scpi_dmm;
mod server;

pub use env::EnvSensor;
pub use hp3458::{Hp3458, SIM_CALSTR};
pub use model::{
    DmmParams, EmfParams, Environment, LabModel, LabParams, StandardParams, Switches, Truth,
    DC_RANGES,
};
pub use prologix::PrologixAdapter;
pub use rng::Rng;
pub use scanner::{Scanner, CHANNELS};
pub use scpi_dmm::ScpiDmm;
pub use server::{serve_stream, Response, SharedLab, SimInstrument, SimServer};

/// Every simulated instrument of the lab, sharing one model, each on its own port.
#[derive(Debug)]
pub struct SimLab {
    /// The shared model.
    pub model: SharedLab,
    /// HP/Agilent 3458A-style DMM.
    pub hp3458: SimServer,
    /// SCPI (34470A-style) DMM.
    pub scpi_dmm: SimServer,
    /// Scanner matrix 0 (measured standard, reversing relays).
    pub scanner_x: SimServer,
    /// Scanner matrix 1 (reference).
    pub scanner_ref: SimServer,
    /// Environment sensor.
    pub env: SimServer,
}

impl SimLab {
    /// Starts every instrument on free ports of `ip`.
    pub async fn start(params: LabParams, ip: IpAddr) -> std::io::Result<Self> {
        Self::start_on(params, ip, [0; 5]).await
    }

    /// Starts the instruments on `ports` (3458A, SCPI DMM, scanner 0, scanner 1, sensor;
    /// 0 for a free port).
    pub async fn start_on(params: LabParams, ip: IpAddr, ports: [u16; 5]) -> std::io::Result<Self> {
        let model: SharedLab = Arc::new(Mutex::new(LabModel::new(params)));
        let at = |i: usize| SocketAddr::new(ip, ports[i]);
        Ok(Self {
            hp3458: SimServer::start(at(0), Hp3458::new(), model.clone()).await?,
            scpi_dmm: SimServer::start(at(1), ScpiDmm::new(), model.clone()).await?,
            scanner_x: SimServer::start(at(2), Scanner::new(0), model.clone()).await?,
            scanner_ref: SimServer::start(at(3), Scanner::new(1), model.clone()).await?,
            env: SimServer::start(at(4), EnvSensor::new(), model.clone()).await?,
            model,
        })
    }
}
