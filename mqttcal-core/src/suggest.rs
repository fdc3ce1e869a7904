//! "Did you mean": the known name closest to a mistyped one.
//!
//! ```
//! use mqttcal_core::suggest::closest;
//! let known = ["measure", "settings", "NPLC"];
//! assert_eq!(closest("mesure", known), Some("measure"));
//! assert_eq!(closest("nplc", known), Some("NPLC"));
//! assert_eq!(closest("thermometer", known), None);
//! ```

/// The name among `known` closest to `typed`: the same but for case, or within an edit
/// distance of a third of its length (at least 1, at most 3). Ties go to the first.
pub fn closest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // A name that long is no typo of a short one; it costs nothing to find that out.
    if typed.len() > 4 * MAX_CHARS {
        return None;
    }
    let chars = typed.chars().count();
    let allowed = (chars / 3).clamp(1, 3);
    let known: Vec<&'a str> = known.into_iter().collect();
    // Names whose lengths differ by more than the edits allowed are never close: a long
    // stranger costs a count of its characters, no more.
    let longest = known.iter().map(|k| k.chars().count()).max().unwrap_or(0);
    if chars > longest + allowed {
        return None;
    }
    let lower = typed.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for k in known {
        if k == typed || k.chars().count().abs_diff(chars) > allowed {
            continue;
        }
        let d = if k.to_lowercase() == lower {
            0
        } else {
            distance(&lower, &k.to_lowercase())
        };
        if d <= allowed && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Names longer than this, in characters, are never close to another.
const MAX_CHARS: usize = 256;

/// Levenshtein distance with adjacent transpositions counted as one edit, over
/// characters; names longer than [`MAX_CHARS`] are never close.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > MAX_CHARS || b.len() > MAX_CHARS {
        return usize::MAX;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_transpositions_and_case_find_their_name_and_strangers_do_not() {
        let caps = [
            "measure",
            "settings",
            "environment",
            "identify",
            "src",
            "pol",
        ];
        assert_eq!(closest("meaure", caps), Some("measure"));
        assert_eq!(closest("masure", caps), Some("measure"));
        assert_eq!(closest("emasure", caps), Some("measure"), "a transposition");
        assert_eq!(closest("Settings", caps), Some("settings"));
        assert_eq!(closest("srcs", caps), Some("src"));
        assert_eq!(closest("export", caps), None);
        assert_eq!(
            closest("measure", caps),
            None,
            "the name itself is no suggestion"
        );
        assert_eq!(closest("", caps), None);
        let long = "x".repeat(300);
        assert_eq!(closest(&long, [long.as_str(), "y"]), None);
    }
}
