//! The `visa` feature on a machine without a VISA library: a clear error, not a crash.
#![cfg(feature = "visa")]

use std::time::Duration;

use mqttcal_instruments::interface::VisaInterface;

#[test]
fn a_missing_visa_library_is_a_clear_error() {
    let err = VisaInterface::open_visa("GPIB0::22::INSTR", Duration::from_secs(1)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("VISA library cannot be loaded"), "{text}");
    assert!(
        text.starts_with("bad resource `GPIB0::22::INSTR`"),
        "{text}"
    );
}
