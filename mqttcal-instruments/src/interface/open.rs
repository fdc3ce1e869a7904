//! Opening the interface that a resource string names.

use std::time::Duration;

use super::{Interface, InterfaceError, Prologix, Resource, SerialInterface, TcpInterface};

/// How to open a resource.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long connecting and each read may take.
    pub timeout: Duration,
    /// Baud rate of serial resources.
    pub baud: u32,
    /// The Prologix-style adapter that `GPIB...::INSTR` resources go through (itself a
    /// socket or serial resource). Without it, GPIB resources need the `visa` feature.
    pub gpib_adapter: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(3),
            baud: 9600,
            gpib_adapter: None,
        }
    }
}

/// Opens the interface that `resource` names: a raw socket, a serial port, a GPIB address
/// through the configured adapter, or (feature `visa`) anything else through VISA.
///
/// ```no_run
/// # async fn demo() -> Result<(), mqttcal_instruments::interface::InterfaceError> {
/// use mqttcal_instruments::interface::{OpenOptions, open, query};
/// let mut dmm = open("TCPIP::192.0.2.7::5025::SOCKET", &OpenOptions::default()).await?;
/// println!("{}", query(&mut *dmm, "*IDN?").await?);
/// # Ok(()) }
/// ```
pub async fn open(
    resource: &str,
    options: &OpenOptions,
) -> Result<Box<dyn Interface>, InterfaceError> {
    let parsed = match Resource::parse(resource) {
        Ok(r) => r,
        #[cfg(feature = "visa")]
        Err(_) => return visa(resource, options),
        #[cfg(not(feature = "visa"))]
        Err(e) => return Err(e),
    };
    match parsed {
        Resource::Socket { host, port } => Ok(Box::new(
            TcpInterface::connect(&host, port, options.timeout).await?,
        )),
        Resource::Serial { device } => Ok(Box::new(SerialInterface::open(
            &device,
            options.baud,
            options.timeout,
        )?)),
        Resource::Gpib { address, .. } => match &options.gpib_adapter {
            Some(adapter) => {
                let link = Box::pin(open(adapter, &OpenOptions { gpib_adapter: None, ..options.clone() })).await?;
                Ok(Box::new(Prologix::open(link, address).await?))
            }
            #[cfg(feature = "visa")]
            None => visa(resource, options),
            #[cfg(not(feature = "visa"))]
            None => Err(InterfaceError::BadResource {
                resource: resource.to_owned(),
                problem: "GPIB resources need a GPIB adapter (labd: `gpib-adapter`) or the `visa` feature".into(),
            }),
        },
    }
}

#[cfg(feature = "visa")]
fn visa(resource: &str, options: &OpenOptions) -> Result<Box<dyn Interface>, InterfaceError> {
    Ok(Box::new(super::VisaInterface::open_visa(
        resource,
        options.timeout,
    )?))
}
