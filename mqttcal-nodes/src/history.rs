//! A standard's calibration history as the drift fit reads it: cald predicts the reference
//! from it, tpld's report draws it.

use mqttcal_messages::CalibrationRecord;
use mqttcal_metrology::HistoryPoint;

/// Seconds in a day: the drift fit counts time in days.
pub(crate) const DAY: f64 = 86_400.0;

/// Each calibration as a point of the drift fit: its day (since the epoch), its value and
/// its standard uncertainty (U / k).
pub(crate) fn history_points(history: &[CalibrationRecord]) -> Vec<HistoryPoint> {
    history
        .iter()
        .map(|c| HistoryPoint {
            t: c.calibrated_at / DAY,
            value: c.value,
            u: c.uncertainty / c.coverage_factor,
        })
        .collect()
}
