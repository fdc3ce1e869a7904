//! Logged-in sessions (a random token in a cookie, with its own CSRF token) and the
//! throttle on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// The most sessions webd holds; a new one past it ends the one idle longest.
pub const MOST_SESSIONS: usize = 10_000;

/// A random token of 32 bytes, URL-safe.
pub fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system gives random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares secrets in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// One person's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who logged in.
    pub user: String,
    /// Their role.
    pub role: String,
    /// The token every state-changing request carries (`X-CSRF-Token` or a `csrf` field).
    pub csrf: String,
    last_seen: Instant,
}

/// The sessions of everyone logged in.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Opens a session; returns its cookie token.
    pub fn open(&self, user: &str, role: &str) -> String {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        if m.len() >= MOST_SESSIONS {
            if let Some(oldest) = m
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        let id = token();
        m.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                role: role.to_owned(),
                csrf: token(),
                last_seen: now,
            },
        );
        id
    }

    /// The session of cookie token `id`, when it is live (and marks it seen).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let s = m.get_mut(id)?;
        if now.duration_since(s.last_seen) >= IDLE {
            m.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session of cookie token `id`.
    pub fn close(&self, id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Ends every session of `user` (their password or role changed).
    pub fn close_user(&self, user: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| s.user != user);
    }
}

/// Failed logins allowed before the throttle makes a caller wait.
pub const FREE_FAILURES: u32 = 5;
/// The longest wait the throttle imposes.
pub const LONGEST_WAIT: Duration = Duration::from_secs(900);
/// Failures are forgotten after this long without one.
const FORGET: Duration = Duration::from_secs(3600);
/// The most names and addresses the throttle remembers.
const MOST_REMEMBERED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When the next attempt may be made: after [`FREE_FAILURES`], 2, 4, 8 ... seconds
    /// after the last failure, at most [`LONGEST_WAIT`].
    fn wait(&self, now: Instant) -> Option<Duration> {
        if self.count < FREE_FAILURES {
            return None;
        }
        let wait =
            Duration::from_secs(1u64 << (self.count - FREE_FAILURES + 1).min(10)).min(LONGEST_WAIT);
        let since = now.duration_since(self.last);
        (since < wait).then(|| wait - since)
    }
}

/// What the throttle keys failures by: the name tried and the address it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

/// Failed logins per name and per address; both must be free for an attempt.
#[derive(Debug, Default)]
pub struct Throttle(Mutex<HashMap<Key, Failures>>);

impl Throttle {
    /// How long `name` from `from` must still wait, if at all.
    pub fn wait(&self, name: &str, from: IpAddr) -> Option<Duration> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        [Key::Name(name.to_owned()), Key::Address(from)]
            .iter()
            .filter_map(|k| m.get(k).and_then(|f| f.wait(now)))
            .max()
    }

    /// Counts a failed login.
    pub fn failed(&self, name: &str, from: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if m.len() >= MOST_REMEMBERED {
            m.retain(|_, f| now.duration_since(f.last) < FORGET);
        }
        for k in [Key::Name(name.to_owned()), Key::Address(from)] {
            let f = m.entry(k).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= FORGET {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
    }

    /// Forgets the failures of `name` (it logged in); the address keeps its count.
    pub fn succeeded(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&Key::Name(name.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_close_and_carry_their_csrf_token() {
        let s = Sessions::default();
        let id = s.open("ada", "operator");
        let got = s.get(&id).unwrap();
        assert_eq!((got.user.as_str(), got.role.as_str()), ("ada", "operator"));
        assert_eq!(got.csrf.len(), 43);
        assert_ne!(got.csrf, id);
        assert!(s.get("forged").is_none());
        s.close_user("ada");
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn the_throttle_makes_a_name_and_an_address_wait_after_five_failures() {
        let t = Throttle::default();
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FREE_FAILURES {
            assert!(t.wait("ada", here).is_none());
            t.failed("ada", here);
        }
        let w = t.wait("ada", here).unwrap();
        assert!(
            w > Duration::from_millis(1500) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        // The name waits from anywhere, the address for any name.
        assert!(t.wait("ada", there).is_some());
        assert!(t.wait("bo", here).is_some());
        assert!(t.wait("bo", there).is_none());
        t.failed("ada", here);
        assert!(t.wait("ada", there).unwrap() > Duration::from_secs(3));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
