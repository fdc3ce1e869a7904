//! Unit symbols as the lab writes them (`V`, `mV`, `°C`) and as D-SI writes them
//! (`\volt`, `\milli\volt`, `\degreecelsius`).

/// Units without a prefix: the symbol and its D-SI name.
const UNITS: &[(&str, &str)] = &[
    ("V", "\\volt"),
    ("A", "\\ampere"),
    ("Ω", "\\ohm"),
    ("ohm", "\\ohm"),
    ("W", "\\watt"),
    ("Hz", "\\hertz"),
    ("s", "\\second"),
    ("K", "\\kelvin"),
    ("°C", "\\degreecelsius"),
    ("Pa", "\\pascal"),
    ("m", "\\metre"),
    ("g", "\\gram"),
    ("F", "\\farad"),
    ("H", "\\henry"),
    ("S", "\\siemens"),
    ("%", "\\percent"),
    ("1", "\\one"),
];

/// SI prefixes: the symbol and its D-SI name.
const PREFIXES: &[(&str, &str)] = &[
    ("p", "\\pico"),
    ("n", "\\nano"),
    ("µ", "\\micro"),
    ("u", "\\micro"),
    ("m", "\\milli"),
    ("c", "\\centi"),
    ("h", "\\hecto"),
    ("k", "\\kilo"),
    ("M", "\\mega"),
    ("G", "\\giga"),
];

/// The D-SI form of `unit`: a unit of the table above, possibly with an SI prefix
/// (`mV`, `kΩ`, `hPa`), or a D-SI string already (`\volt`, kept as it is); `%RH` is
/// `\percent`. `None` for a unit this table does not know.
///
/// ```
/// use mqttcal_certificates::si_unit;
/// assert_eq!(si_unit("V").as_deref(), Some("\\volt"));
/// assert_eq!(si_unit("hPa").as_deref(), Some("\\hecto\\pascal"));
/// assert_eq!(si_unit("\\micro\\volt").as_deref(), Some("\\micro\\volt"));
/// assert_eq!(si_unit("furlong"), None);
/// ```
pub fn si_unit(unit: &str) -> Option<String> {
    let unit = unit.trim();
    if unit.starts_with('\\') && unit.len() > 1 && !unit.contains(char::is_whitespace) {
        return Some(unit.to_owned());
    }
    if unit == "%RH" {
        return Some("\\percent".into());
    }
    if let Some((_, si)) = UNITS.iter().find(|(symbol, _)| *symbol == unit) {
        return Some((*si).to_owned());
    }
    PREFIXES.iter().find_map(|(p, prefix)| {
        let rest = unit.strip_prefix(p)?;
        // `%`, `1` and `°C` take no prefix.
        let (_, si) = UNITS
            .iter()
            .find(|(symbol, _)| *symbol == rest && !matches!(rest, "%" | "1" | "°C"))?;
        Some(format!("{prefix}{si}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_and_plain_units() {
        for (unit, si) in [
            ("mV", "\\milli\\volt"),
            ("µV", "\\micro\\volt"),
            ("uV", "\\micro\\volt"),
            ("kΩ", "\\kilo\\ohm"),
            ("Mohm", "\\mega\\ohm"),
            ("°C", "\\degreecelsius"),
            ("%RH", "\\percent"),
            ("m", "\\metre"),
            ("ms", "\\milli\\second"),
        ] {
            assert_eq!(si_unit(unit).as_deref(), Some(si), "{unit}");
        }
        for unknown in ["", "\\", "m°C", "k%", "volt", "V V", "\\volt \\x"] {
            assert_eq!(si_unit(unknown), None, "{unknown:?}");
        }
    }
}
