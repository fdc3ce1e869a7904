//! VISA-style resource strings.

use super::InterfaceError;

/// Where an instrument is, parsed from a VISA-style resource string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Resource {
    /// `TCPIP[board]::host::port::SOCKET`: a raw socket.
    Socket {
        /// Host name or address.
        host: String,
        /// TCP port (5025 for SCPI).
        port: u16,
    },
    /// `ASRL<device>::INSTR`: a serial port, e.g. `ASRL/dev/ttyUSB0::INSTR`.
    Serial {
        /// The device path.
        device: String,
    },
    /// `GPIB[board]::<address>::INSTR`: through a configured GPIB adapter.
    Gpib {
        /// Board number.
        board: u8,
        /// Primary address, 0 to 30.
        address: u8,
    },
}

impl Resource {
    /// Parses a resource string.
    ///
    /// ```
    /// use mqttcal_instruments::interface::Resource;
    /// assert_eq!(
    ///     Resource::parse("TCPIP::192.0.2.7::5025::SOCKET").unwrap(),
    ///     Resource::Socket { host: "192.0.2.7".into(), port: 5025 }
    /// );
    /// assert_eq!(Resource::parse("GPIB0::22::INSTR").unwrap(), Resource::Gpib { board: 0, address: 22 });
    /// ```
    pub fn parse(text: &str) -> Result<Self, InterfaceError> {
        let bad = |problem: &str| InterfaceError::BadResource {
            resource: text.to_owned(),
            problem: problem.to_owned(),
        };
        let parts: Vec<&str> = text.trim().split("::").collect();
        let kind = parts[0].to_ascii_uppercase();
        let suffix = parts
            .last()
            .map(|s| s.to_ascii_uppercase())
            .unwrap_or_default();
        if kind.starts_with("TCPIP") {
            match (parts.as_slice(), suffix.as_str()) {
                ([_, host, port, _], "SOCKET") => Ok(Self::Socket {
                    host: (*host).to_owned(),
                    port: port.parse().map_err(|_| bad("the port is not a number"))?,
                }),
                (_, "INSTR") => Err(bad(
                    "VXI-11 (TCPIP::host::INSTR) is not supported; use TCPIP::host::port::SOCKET",
                )),
                _ => Err(bad("expected TCPIP::host::port::SOCKET")),
            }
        } else if let Some(device) = parts[0].strip_prefix("ASRL") {
            if parts.len() != 2 || suffix != "INSTR" || device.is_empty() {
                return Err(bad("expected ASRL<device>::INSTR"));
            }
            Ok(Self::Serial {
                device: device.to_owned(),
            })
        } else if let Some(board) = kind.strip_prefix("GPIB") {
            let board = if board.is_empty() {
                0
            } else {
                board.parse().map_err(|_| bad("bad GPIB board"))?
            };
            match parts.as_slice() {
                [_, addr, _] if suffix == "INSTR" => {
                    let address: u8 = addr
                        .parse()
                        .map_err(|_| bad("the GPIB address is not a number"))?;
                    if address > 30 {
                        return Err(bad("GPIB addresses go from 0 to 30"));
                    }
                    Ok(Self::Gpib { board, address })
                }
                _ => Err(bad("expected GPIB<board>::<address>::INSTR")),
            }
        } else {
            Err(bad("unknown interface (TCPIP, ASRL or GPIB)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_strings() {
        assert_eq!(
            Resource::parse("ASRL/dev/ttyUSB0::INSTR").unwrap(),
            Resource::Serial {
                device: "/dev/ttyUSB0".into()
            }
        );
        assert_eq!(
            Resource::parse("GPIB::3::INSTR").unwrap(),
            Resource::Gpib {
                board: 0,
                address: 3
            }
        );
        for bad in [
            "TCPIP::h::INSTR",
            "TCPIP::h::x::SOCKET",
            "GPIB0::31::INSTR",
            "USB::1::INSTR",
            "ASRL::INSTR",
        ] {
            assert!(Resource::parse(bad).is_err(), "{bad}");
        }
        let e = Resource::parse("TCPIP::h::INSTR").unwrap_err().to_string();
        assert!(e.contains("VXI-11"), "{e}");
    }
}
