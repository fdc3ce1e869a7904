//! # mqttcal-fuzz
//!
//! Mutation fuzzing on stable Rust of the parsers that read what anyone on the broker (or an
//! instrument, or a configuration file) sends: the message envelope, datad's one-pass
//! reading parser, SCPI responses and resource strings, the YAML configuration.
//!
//! Each [`Target`] starts from a committed corpus (`fuzz/corpus/<target>/`, the seeds and
//! the interesting inputs found so far), mutates its inputs (bit flips, JSON tokens,
//! insertions, deletions, splices) and checks that the parser never panics and that what it
//! accepts holds its invariants (an envelope it decodes encodes and decodes back to the same
//! fields; the one-pass reading parser agrees with the general one). There is no coverage
//! feedback: the corpus carries what coverage-guided runs elsewhere would find.
//!
//! `cargo test -p mqttcal-fuzz` runs a bounded smoke (20,000 cases per target); a longer
//! run:
//!
//! ```sh
//! MQTTCAL_FUZZ_CASES=2000000 MQTTCAL_FUZZ_SEED=$RANDOM cargo test --release -p mqttcal-fuzz -- --nocapture
//! ```
//!
//! A failing input is written to `fuzz/found/<target>-<hash>`; add it to the corpus once
//! fixed.
//!
//! ```
//! use mqttcal_fuzz::{Rng, mutate};
//!
//! let mut rng = Rng::new(7);
//! let out = mutate(&mut rng, br#"{"from":"a","to":"b"}"#, &[]);
//! assert!(out.len() <= 64 * 1024);
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

mod targets;

pub use targets::TARGETS;

/// A small, fast, reproducible pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Fragments that parsers of JSON, numbers and SCPI trip on.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"-1e-999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1.7976931348623157e308",
    b"NaN",
    b"\\u0000",
    b"\\ud800",
    b"\\\"",
    b"\"from\":",
    b"\"to\":",
    b"\"requestid\":",
    b"\"seq\":",
    b"\"epoch\":",
    b"\"DC-measurement\":",
    b"\"timestamp\":",
    b"\"src\":",
    b"\xff",
    b"\xc3\x28",
    b"\x00",
    b"#",
    b"#9",
    b"#0",
    b"\n",
    b"\r\n",
    b";",
    b"+9.9E+37",
    b"-410,\"Query INTERRUPTED\"",
    b"TCPIP::",
    b"::SOCKET",
    b"GPIB0::",
    b"ASRL",
    b"  ",
];

/// One mutation of `input` (one to four edits; `others` may be spliced in). The result is
/// at most 64 KiB.
pub fn mutate(rng: &mut Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0u8, 0x7f, 0x80, 0xff, b'"', b'\\', b'9', b'-'][rng.below(8)];
            }
            2 | 3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            4 if !out.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                let start = at.min(end);
                out.drain(start..end);
            }
            5 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(32)).min(out.len());
                let copy = out[start..end].to_vec();
                out.splice(at..at, copy);
            }
            6 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                let start = rng.below(other.len() + 1);
                let end = (start + rng.below(64)).min(other.len());
                out.splice(at..at, other[start..end].iter().copied());
            }
            _ => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, bytes);
            }
        }
    }
    out.truncate(64 * 1024);
    out
}

/// A parser under test: its name (the corpus folder) and a check that panics when the
/// parser misbehaves on an input.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The folder under `fuzz/corpus/`.
    pub name: &'static str,
    /// Parses `input`; panics on a broken invariant.
    pub check: fn(&[u8]),
}

/// The outcome of a run over one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Inputs tried (corpus included).
    pub cases: u64,
    /// The first failing input, written to this file.
    pub failure: Option<PathBuf>,
}

/// The corpus of `name` under `root` (each file one input), sorted by file name.
pub fn corpus(root: &Path, name: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(name))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Runs `target` on its corpus and on `cases` mutations of it, from `seed`; stops at the
/// first failure and writes the input to `found/`.
pub fn run(target: &Target, root: &Path, found: &Path, cases: u64, seed: u64) -> Report {
    let seeds = corpus(root, target.name);
    let mut rng = Rng::new(seed ^ fnv(target.name.as_bytes()));
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut tried = 0;
    let mut failure = None;
    for i in 0..(seeds.len() as u64 + cases) {
        let input = match seeds.get(i as usize) {
            Some(s) => s.clone(),
            None if seeds.is_empty() => mutate(&mut rng, b"", &seeds),
            None => {
                let pick = rng.below(seeds.len());
                mutate(&mut rng, &seeds[pick], &seeds)
            }
        };
        tried += 1;
        if catch_unwind(AssertUnwindSafe(|| (target.check)(&input))).is_err() {
            let _ = std::fs::create_dir_all(found);
            let path = found.join(format!("{}-{:016x}", target.name, fnv(&input)));
            let _ = std::fs::write(&path, &input);
            failure = Some(path);
            break;
        }
    }
    std::panic::set_hook(quiet);
    Report {
        cases: tried,
        failure,
    }
}

/// FNV-1a, for file names and per-target seeds.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
