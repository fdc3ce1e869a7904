//! How many refusals a node writes in the logbook: enough to see who is refused, not so
//! many that a flood of refused requests drowns the logbook.

use std::sync::Mutex;
use std::time::Instant;

/// At most [`RefusalBudget::PER_MINUTE`] refusals a minute go to the logbook; the rest are
/// counted, and the next logged one says how many.
#[derive(Debug)]
pub(crate) struct RefusalBudget(Mutex<(Instant, u32, u64)>);

impl Default for RefusalBudget {
    fn default() -> Self {
        Self(Mutex::new((Instant::now(), 0, 0)))
    }
}

impl RefusalBudget {
    /// Refusals logged a minute.
    pub(crate) const PER_MINUTE: u32 = 60;

    /// `Some(left out before this one)` when this refusal is to be logged.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (start, logged, unlogged) = &mut *g;
        if start.elapsed() >= std::time::Duration::from_secs(60) {
            *start = Instant::now();
            *logged = 0;
        }
        if *logged < Self::PER_MINUTE {
            *logged += 1;
            Some(std::mem::take(unlogged))
        } else {
            *unlogged += 1;
            None
        }
    }
}

/// A [`RefusalBudget`] per caller, so that one caller's flood of refusals does not keep
/// another's out of the logbook; callers beyond [`RefusalBudgets::CALLERS`] share one.
#[cfg(feature = "ctrld")]
#[derive(Debug, Default)]
pub(crate) struct RefusalBudgets(Mutex<std::collections::HashMap<String, RefusalBudget>>);

#[cfg(feature = "ctrld")]
impl RefusalBudgets {
    /// Callers with a budget of their own.
    pub(crate) const CALLERS: usize = 1000;

    /// [`RefusalBudget::admit`] for `caller`'s budget (`""`: the shared one).
    pub(crate) fn admit(&self, caller: &str) -> Option<u64> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = if m.contains_key(caller) || m.len() < Self::CALLERS {
            caller
        } else {
            ""
        };
        m.entry(key.to_owned()).or_default().admit()
    }
}

#[cfg(test)]
mod tests {
    use super::RefusalBudget;

    #[cfg(feature = "ctrld")]
    #[test]
    fn one_callers_flood_leaves_anothers_refusals_logged() {
        let b = super::RefusalBudgets::default();
        for _ in 0..RefusalBudget::PER_MINUTE + 10 {
            b.admit("vic");
        }
        assert_eq!(b.admit("vic"), None);
        assert_eq!(b.admit("ada"), Some(0));
    }

    #[test]
    fn a_flood_of_refusals_is_counted_not_logged() {
        let b = RefusalBudget::default();
        for _ in 0..RefusalBudget::PER_MINUTE {
            assert_eq!(b.admit(), Some(0));
        }
        for _ in 0..500 {
            assert_eq!(b.admit(), None);
        }
        // A minute later the next one is logged and says how many were left out.
        b.0.lock().unwrap().0 -= std::time::Duration::from_secs(61);
        assert_eq!(b.admit(), Some(500));
        assert_eq!(b.admit(), Some(0));
    }
}
