//! Test harness of mqttcal.
//!
//! Starts private Mosquitto brokers and PostgreSQL clusters on free loopback ports from the config files in
//! `testkit/conf/`, so a test can stop and restart its broker without disturbing anything
//! else; generates TLS certificates and password files; finds the Python interpreter with
//! paho-mqtt. Binaries come from the environment that `scripts/test.sh` exports
//! (`MQTTCAL_MOSQUITTO`, `MQTTCAL_MOSQUITTO_PASSWD`, `MQTTCAL_PYTHON`, `MQTTCAL_SOCAT`); a missing binary
//! fails the test with a message naming that script, never skips it.

mod mosquitto;
mod pdf;
mod postgres;
mod pty;
mod simlab;
mod snapshot;
mod tools;
#[cfg(feature = "web")]
pub mod web;

pub use mosquitto::{BrokerKind, Mosquitto};
pub use pdf::{pdf_pages, pdf_text};
pub use postgres::Postgres;
pub use pty::PtyPair;
pub use simlab::spawn_sim_lab;
pub use snapshot::check_snapshot;
pub use tools::{
    chromedriver, chromium, free_port, openssl, pdftotext, python, python_peer, rss_kib,
    self_signed_pair, wait_for_port, xmllint, xmlsec1,
};
