//! The physical model of a simulated DC-voltage lab, deterministic from a seed.
//!
//! A reading of the DMM is
//!
//! r = (1 + g) · (s · (V_x − V_ref) + E_x + E_ref) + O + n
//!
//! with V the standards' voltages (nominal + offset + linear drift + temperature and
//! pressure terms + white and low-frequency noise), s = ±1 the polarity set by the scanner's
//! reversing relays, E the thermal EMF of each scanner channel (a constant part and a slow
//! linear drift, not reversed), g and O the DMM's gain error and offset, and n the DMM noise,
//! falling as 1/√NPLC. So (r₊ − r₋)/2 = (1 + g)·V exactly, and + − − + at equal spacing
//! also cancels a linear drift of E; a single-polarity reading is biased by E + O. A part of
//! each channel's EMF sits before the reversing relays (relay asymmetry) and is reversed
//! with the standard: no reversal cancels it, and a budget must carry it. The EMFs after the
//! reversal point follow the lab's temperature and settle (they stay bounded).
//!
//! Model time runs `1 / time_factor` times faster than the wall clock, so tests can set the
//! factor small and still see the real integration, settling and relay times in model time.

use std::time::Instant;

use super::flicker::Flicker;
use super::rng::Rng;

/// A DMM's fixed DC input resistance, Ω.
pub(crate) const FIXED_INPUT: f64 = 10e6;
/// A high-impedance DC input (ranges up to 10 V), Ω.
pub(crate) const HIGH_INPUT: f64 = 10e9;

/// The time constants of the flicker noise's relaxation processes, seconds.
const FLICKER_BAND: (f64, f64) = (1.0, 1e5);

/// One simulated Zener voltage standard.
#[derive(Debug, Clone)]
pub struct StandardParams {
    /// Its id, e.g. `Z1`.
    pub id: String,
    /// Nominal value, V (10 or 1.018).
    pub nominal: f64,
    /// Offset of the true value from nominal at model time 0, V.
    pub offset: f64,
    /// Linear drift, V per day.
    pub drift_per_day: f64,
    /// White noise, V rms, of a reading integrated over 1 NPLC (it averages down as
    /// 1/√NPLC, like the DMM's).
    pub white_noise: f64,
    /// Flicker (1/f) noise: its flat Allan deviation, V, for averaging times from about
    /// 2 s to 50,000 s (a sum of relaxation processes, see `sim/flicker.rs`).
    pub flicker_noise: f64,
    /// Temperature coefficient, V/K from 23 °C.
    pub temp_coeff: f64,
    /// Pressure coefficient, V/hPa from 1013.25 hPa.
    pub pressure_coeff: f64,
    /// Output (source) resistance, Ω: a DMM input of resistance R reads the output
    /// times R/(R + this).
    pub source_resistance: f64,
}

impl StandardParams {
    /// A 10 V standard with typical parameters.
    pub fn zener_10v(id: &str, offset: f64) -> Self {
        Self {
            id: id.into(),
            nominal: 10.0,
            offset,
            drift_per_day: 2e-8,
            white_noise: 20e-9,
            flicker_noise: 10e-9,
            temp_coeff: 5e-8,
            pressure_coeff: 1.5e-8,
            // Fluke 732B: under 1 mΩ at the 10 V output.
            source_resistance: 1e-3,
        }
    }

    /// A 1.018 V standard with typical parameters.
    pub fn zener_1v018(id: &str, offset: f64) -> Self {
        Self {
            id: id.into(),
            nominal: 1.018,
            offset,
            drift_per_day: 2e-9,
            white_noise: 5e-9,
            flicker_noise: 2e-9,
            temp_coeff: 5e-9,
            pressure_coeff: 1e-9,
            // Fluke 732B: about 1 kΩ at the 1.018 V output.
            source_resistance: 1e3,
        }
    }
}

/// The time constant of the thermal EMFs' settling, s: they drift at `drift_per_s` at first
/// and level off, so they stay bounded however long the lab runs.
const EMF_SETTLING_S: f64 = 3600.0;

/// The scanner channels' thermal EMFs.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmfParams {
    /// Constant part, V (tens of nV).
    pub constant: f64,
    /// Initial drift, V per second; it levels off with a time constant of an hour, so the
    /// EMF never moves by more than `drift_per_s` × 3600 s.
    pub drift_per_s: f64,
    /// Temperature coefficient, V/K from 23 °C (copper–brass junctions: tens of nV/K).
    pub temp_coeff: f64,
    /// The part of the EMF before the reversing relays (relay asymmetry), V: it is reversed
    /// with the standard, so the reversal does not cancel it.
    pub before_reversal: f64,
}

impl EmfParams {
    /// The EMF after the reversal point at model time `t` with the lab at `temperature`.
    pub fn after_reversal(&self, t: f64, temperature: f64) -> f64 {
        self.constant
            + self.drift_per_s * EMF_SETTLING_S * (1.0 - (-t.max(0.0) / EMF_SETTLING_S).exp())
            + self.temp_coeff * (temperature - 23.0)
    }
}

/// The DC ranges of the simulated DMMs, V: index `i` of the per-range parameters.
pub const DC_RANGES: [f64; 5] = [0.1, 1.0, 10.0, 100.0, 1000.0];

/// The DMM's imperfections.
#[derive(Debug, Clone, Copy)]
pub struct DmmParams {
    /// Gain error common to every range, relative (e.g. 2e-7 for 0.2 ppm).
    pub gain_error: f64,
    /// Offset common to every range, V.
    pub offset: f64,
    /// Gain error of each range of [`DC_RANGES`] on top of `gain_error` (the range
    /// dividers and amplifiers differ).
    pub range_gain: [f64; 5],
    /// Offset of each range of [`DC_RANGES`] on top of `offset`, V.
    pub range_offset: [f64; 5],
    /// Noise at 1 NPLC on the 10 V range, V rms; it falls as 1/√NPLC, and scales with the
    /// range down to a tenth of it on the 1 V range and below (the input stage's floor).
    pub noise_at_1_nplc: f64,
    /// Line frequency, Hz (integration time = NPLC / line frequency).
    pub line_frequency: f64,
    /// Settling time added to each reading, s.
    pub settle_s: f64,
}

/// The index in [`DC_RANGES`] of the range nearest `range`.
fn range_index(range: f64) -> usize {
    DC_RANGES
        .iter()
        .enumerate()
        .min_by(|a, b| {
            (a.1.log10() - range.max(1e-12).log10())
                .abs()
                .total_cmp(&(b.1.log10() - range.max(1e-12).log10()).abs())
        })
        .map_or(2, |(i, _)| i)
}

/// Everything the model needs.
#[derive(Debug, Clone)]
pub struct LabParams {
    /// Seed of all noise.
    pub seed: u64,
    /// Wall-clock seconds per model second (1 = real time; tests set it small). 0 runs the
    /// lab on a virtual clock: model time advances by exactly what each instrument
    /// operation takes (integration, settling, relays) and nothing sleeps, so results do not
    /// depend on thread scheduling.
    pub time_factor: f64,
    /// The standards; channel *i* + 1 of a scanner connects standard *i*.
    pub standards: Vec<StandardParams>,
    /// Thermal EMF of each channel, by channel index (missing ones are zero).
    pub emfs: Vec<EmfParams>,
    /// The DMM.
    pub dmm: DmmParams,
    /// Relay switching and settling time of the scanner, s.
    pub relay_s: f64,
}

impl Default for LabParams {
    fn default() -> Self {
        Self {
            seed: 1,
            time_factor: 1.0,
            standards: vec![
                StandardParams::zener_10v("Z1", 12.3e-6),
                StandardParams::zener_10v("Z2", -4.1e-6),
                StandardParams::zener_1v018("Z3", 0.8e-6),
                StandardParams::zener_1v018("Z4", -1.7e-6),
            ],
            emfs: vec![
                EmfParams {
                    constant: 35e-9,
                    drift_per_s: 2e-11,
                    temp_coeff: 20e-9,
                    before_reversal: 3e-9,
                },
                EmfParams {
                    constant: -22e-9,
                    drift_per_s: -1e-11,
                    temp_coeff: -15e-9,
                    before_reversal: -2e-9,
                },
                EmfParams {
                    constant: 48e-9,
                    drift_per_s: 3e-11,
                    temp_coeff: 25e-9,
                    before_reversal: 4e-9,
                },
                EmfParams {
                    constant: 15e-9,
                    drift_per_s: 1e-11,
                    temp_coeff: 10e-9,
                    before_reversal: -1e-9,
                },
            ],
            dmm: DmmParams {
                gain_error: 2e-7,
                offset: 150e-9,
                // HP 3458A-like: a few tenths of a ppm between ranges after calibration,
                // offsets of tens of nV on the low ranges, µV on the high ones.
                range_gain: [3e-7, 1e-7, 0.0, -2e-7, 4e-7],
                range_offset: [20e-9, 50e-9, 0.0, 2e-6, 20e-6],
                noise_at_1_nplc: 100e-9,
                line_frequency: 50.0,
                settle_s: 0.05,
            },
            relay_s: 0.5,
        }
    }
}

/// The lab environment at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    /// Temperature, °C.
    pub temperature: f64,
    /// Relative humidity, %.
    pub humidity: f64,
    /// Pressure, hPa.
    pub pressure: f64,
}

/// What the scanner matrices connect to the DMM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// Channel closed on matrix 0 (the measured standard), 1-based.
    pub x: Option<usize>,
    /// Channel closed on matrix 1 (the reference in series opposition), 1-based.
    pub reference: Option<usize>,
    /// Reversing relays set to negative.
    pub negative: bool,
}

/// The state of a simulated lab.
#[derive(Debug)]
pub struct LabModel {
    params: LabParams,
    rng: Rng,
    started: Instant,
    flicker: Vec<Flicker>,
    last_t: f64,
    /// Model time of the virtual clock (`time_factor` 0).
    virtual_now: f64,
    /// Model seconds the instruments have spent on operations (integration, settling,
    /// relays, sensor reads) since the start.
    busy: f64,
    /// What the lab's standards truly output at each reading.
    truth: Vec<Truth>,
    /// What the scanners connect now.
    pub switches: Switches,
}

/// The truth behind one DMM reading, for tests: the true outputs (flicker included, white
/// noise not) of the standards connected, at the reading's model time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    /// Model time, s.
    pub t: f64,
    /// The measured standard's index and true output, V.
    pub x: Option<(usize, f64)>,
    /// The reference standard's index and true output, V (differential mode).
    pub reference: Option<(usize, f64)>,
}

/// Readings whose truth is kept; older ones are dropped.
const TRUTH_KEPT: usize = 1 << 20;

impl LabModel {
    /// A lab at model time 0.
    pub fn new(params: LabParams) -> Self {
        let mut rng = Rng::new(params.seed);
        let flicker = params
            .standards
            .iter()
            .map(|s| Flicker::new(s.flicker_noise, FLICKER_BAND.0, FLICKER_BAND.1, &mut rng))
            .collect();
        Self {
            rng,
            params,
            started: Instant::now(),
            flicker,
            last_t: 0.0,
            virtual_now: 0.0,
            busy: 0.0,
            truth: Vec::new(),
            switches: Switches::default(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &LabParams {
        &self.params
    }

    /// Model seconds since the start.
    pub fn now(&self) -> f64 {
        if self.is_virtual() {
            self.virtual_now
        } else {
            self.started.elapsed().as_secs_f64() / self.params.time_factor
        }
    }

    /// Whether the lab runs on a virtual clock (`time_factor` 0).
    pub fn is_virtual(&self) -> bool {
        self.params.time_factor == 0.0
    }

    /// Counts an instrument operation of `dt` model seconds; on a virtual clock, moves the
    /// clock on by it.
    pub fn advance_clock(&mut self, dt: f64) {
        if dt.is_finite() && dt > 0.0 {
            self.busy += dt;
            if self.is_virtual() {
                self.virtual_now += dt;
            }
        }
    }

    /// Model seconds the instruments have spent on operations since the start: the time a
    /// measurement cannot take less than (a bench's baseline).
    pub fn instrument_time(&self) -> f64 {
        self.busy
    }

    /// The truth of every reading since the start (or the last [`LabModel::take_truth`]),
    /// oldest first: for tests that compare a result with what the simulator did.
    pub fn take_truth(&mut self) -> Vec<Truth> {
        std::mem::take(&mut self.truth)
    }

    /// The environment at model time `t` (slow, deterministic variations).
    pub fn environment(&self, t: f64) -> Environment {
        let day = std::f64::consts::TAU * t / 86_400.0;
        Environment {
            temperature: 23.0 + 0.05 * day.sin() + 0.01 * (day * 24.0).sin(),
            humidity: 45.0 + 2.0 * day.cos(),
            pressure: 1013.25 + 3.0 * (day / 3.0).sin(),
        }
    }

    /// The true (noise-free) voltage of standard `index` at model time `t`.
    pub fn true_value(&self, index: usize, t: f64) -> f64 {
        let s = &self.params.standards[index];
        let env = self.environment(t);
        s.nominal
            + s.offset
            + s.drift_per_day * t / 86_400.0
            + s.temp_coeff * (env.temperature - 23.0)
            + s.pressure_coeff * (env.pressure - 1013.25)
    }

    /// What a calibration of standard `index` should find at model time `t`: the
    /// noise-free value plus its flicker noise as of the last reading (flicker is part of
    /// the standard's output; only the white noise averages away).
    pub fn true_output(&self, index: usize, t: f64) -> f64 {
        self.true_value(index, t) + self.flicker.get(index).map_or(0.0, Flicker::value)
    }

    /// The thermal EMF after the reversal point of (1-based) channel `channel` at model
    /// time `t`.
    pub fn emf(&self, channel: usize, t: f64) -> f64 {
        let temperature = self.environment(t).temperature;
        self.params
            .emfs
            .get(channel.wrapping_sub(1))
            .map_or(0.0, |e| e.after_reversal(t, temperature))
    }

    /// The EMF of (1-based) channel `channel` before the reversal point.
    fn emf_before_reversal(&self, channel: usize) -> f64 {
        self.params
            .emfs
            .get(channel.wrapping_sub(1))
            .map_or(0.0, |e| e.before_reversal)
    }

    /// Advances the low-frequency noise to model time `t`.
    fn advance(&mut self, t: f64) {
        let dt = (t - self.last_t).max(0.0);
        self.last_t = self.last_t.max(t);
        for f in &mut self.flicker {
            f.advance(dt, &mut self.rng);
        }
    }

    /// The output of the standard on (1-based) `channel` integrated over `nplc`: its true
    /// output and white noise averaged over the integration time.
    fn standard_voltage(&mut self, channel: usize, t: f64, nplc: f64) -> f64 {
        let i = channel - 1;
        if i >= self.params.standards.len() {
            return 0.0;
        }
        let white =
            self.params.standards[i].white_noise / nplc.max(0.0001).sqrt() * self.rng.normal();
        self.true_output(i, t) + white
    }

    /// One DMM reading at model time `t` with the present switches, through an input of
    /// `input_resistance` Ω (10 MΩ for a fixed input, about 10 GΩ for a high-impedance one):
    /// the standards' outputs are divided by their source resistances against it.
    pub fn read_dmm(&mut self, nplc: f64, t: f64, input_resistance: f64, range: f64) -> f64 {
        self.advance(t);
        let sw = self.switches;
        let sign = if sw.negative { -1.0 } else { 1.0 };
        let mut signal = 0.0;
        let mut emf = 0.0;
        let mut source = 0.0;
        let mut truth = Truth {
            t,
            x: None,
            reference: None,
        };
        if let Some(x) = sw.x {
            signal += self.standard_voltage(x, t, nplc) + self.emf_before_reversal(x);
            emf += self.emf(x, t);
            source += self.source_resistance(x);
            truth.x = self.truth_of(x, t);
        }
        if let Some(r) = sw.reference {
            signal -= self.standard_voltage(r, t, nplc) - self.emf_before_reversal(r);
            emf += self.emf(r, t);
            source += self.source_resistance(r);
            truth.reference = self.truth_of(r, t);
        }
        if self.truth.len() >= TRUTH_KEPT {
            self.truth.drain(..TRUTH_KEPT / 2);
        }
        self.truth.push(truth);
        let r_in = input_resistance.max(1.0);
        signal *= r_in / (r_in + source);
        let d = self.params.dmm;
        let i = range_index(range);
        let scale = (range / 10.0).max(0.1);
        let noise = d.noise_at_1_nplc * scale / nplc.max(0.0001).sqrt() * self.rng.normal();
        (1.0 + d.gain_error + d.range_gain[i]) * (sign * signal + emf)
            + d.offset
            + d.range_offset[i]
            + noise
    }

    fn truth_of(&self, channel: usize, t: f64) -> Option<(usize, f64)> {
        let i = channel.checked_sub(1)?;
        (i < self.params.standards.len()).then(|| (i, self.true_output(i, t)))
    }

    /// The output resistance of the standard on (1-based) channel `channel`, Ω.
    fn source_resistance(&self, channel: usize) -> f64 {
        self.params
            .standards
            .get(channel.wrapping_sub(1))
            .map_or(0.0, |s| s.source_resistance)
    }

    /// Model seconds a reading takes at `nplc`.
    pub fn reading_time(&self, nplc: f64) -> f64 {
        nplc / self.params.dmm.line_frequency + self.params.dmm.settle_s
    }

    /// Index of the standard with `id`, if any.
    pub fn standard_index(&self, id: &str) -> Option<usize> {
        self.params.standards.iter().position(|s| s.id == id)
    }
}
