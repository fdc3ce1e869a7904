//! Helpers shared by the instrument tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use mqttcal_instruments::interface::{Interface, Resource, TcpInterface};
use mqttcal_instruments::sim::SimServer;

/// A TCP link to a simulated instrument, through its resource string.
pub async fn link(server: &SimServer) -> Box<dyn Interface> {
    let Resource::Socket { host, port } = Resource::parse(&server.resource()).unwrap() else {
        panic!("not a socket resource")
    };
    Box::new(
        TcpInterface::connect(&host, port, Duration::from_secs(2))
            .await
            .unwrap(),
    )
}
