//! Logged-in sessions (a random token in a cookie, with its own CSRF token) and the
//! throttle on failed logins.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after the login, however busy.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// The most sessions webd holds; a new one past it ends the one idle longest.
pub const MOST_SESSIONS: usize = 10_000;
/// The most sessions of one person; a new one past it ends their oldest.
pub const SESSIONS_PER_USER: usize = 20;

/// A random token of 32 bytes, URL-safe.
pub fn token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system gives random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Compares secrets in a time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same_secret`] for bytes.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
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
    /// The password the person logged in with, as a stamp: a new password ends the session.
    pub stamp: String,
    started: Instant,
    last_seen: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE && now.duration_since(self.started) < LONGEST
    }
}

/// The sessions of everyone logged in.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Opens a session for `user` in `role`, who logged in with the password of `stamp`;
    /// returns its cookie token.
    pub fn open(&self, user: &str, role: &str, stamp: &str) -> String {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, s| s.live(now));
        let theirs: Vec<(Instant, String)> = m
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(k, s)| (s.started, k.clone()))
            .collect();
        if theirs.len() >= SESSIONS_PER_USER {
            if let Some((_, oldest)) = theirs.iter().min() {
                m.remove(oldest);
            }
        }
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
                stamp: stamp.to_owned(),
                started: now,
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
        if !s.live(now) {
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

/// What the throttle keys failures by: the name tried and the address it came from (an
/// IPv6 address by its /64, which one host may hold whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

fn address_key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut o = v6.octets();
            o[8..].fill(0);
            Key::Address(IpAddr::from(o))
        }
        IpAddr::V6(v6) => Key::Address(IpAddr::V4(
            v6.to_ipv4_mapped()
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        )),
        v4 => Key::Address(v4),
    }
}

/// Failed logins per name and per address; both must be free for an attempt. An attempt
/// counts as a failure from the moment it begins (so attempts sent at once cannot all
/// pass before the first fails) until it succeeds.
#[derive(Debug, Default)]
pub struct Throttle(Mutex<HashMap<Key, Failures>>);

impl Throttle {
    /// Begins an attempt of `name` from `from`: counted at once, or how long to wait first.
    /// A name that could not be anyone's is counted against the address only.
    pub fn begin(&self, name: &str, from: IpAddr) -> Result<(), Duration> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let keys = Self::keys(name, from);
        if let Some(wait) = keys
            .iter()
            .filter_map(|k| m.get(k).and_then(|f| f.wait(now)))
            .max()
        {
            return Err(wait);
        }
        if m.len() >= MOST_REMEMBERED {
            m.retain(|_, f| now.duration_since(f.last) < FORGET);
            while m.len() >= MOST_REMEMBERED {
                let Some(oldest) = m.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone())
                else {
                    break;
                };
                m.remove(&oldest);
            }
        }
        for k in keys {
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
        Ok(())
    }

    /// The attempt begun for `name` from `from` succeeded: the name's failures are
    /// forgotten, and the address's count takes back this attempt.
    pub fn succeeded(&self, name: &str, from: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(&Key::Name(name.to_owned()));
        if let Some(f) = m.get_mut(&address_key(from)) {
            f.count = f.count.saturating_sub(1);
        }
    }

    fn keys(name: &str, from: IpAddr) -> Vec<Key> {
        let mut keys = vec![address_key(from)];
        if crate::users::check_name("user name", name).is_ok() {
            keys.push(Key::Name(name.to_owned()));
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_close_and_carry_their_csrf_token() {
        let s = Sessions::default();
        let id = s.open("ada", "operator", "stamp");
        let got = s.get(&id).unwrap();
        assert_eq!((got.user.as_str(), got.role.as_str()), ("ada", "operator"));
        assert_eq!(got.csrf.len(), 43);
        assert_ne!(got.csrf, id);
        assert!(s.get("forged").is_none());
        s.close_user("ada");
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn one_person_holds_a_bounded_number_of_sessions() {
        let s = Sessions::default();
        let first = s.open("ada", "viewer", "x");
        let other = s.open("bo", "viewer", "x");
        for _ in 0..SESSIONS_PER_USER {
            s.open("ada", "viewer", "x");
        }
        assert!(s.get(&first).is_none(), "ada's oldest session made room");
        assert!(s.get(&other).is_some(), "bo's session stays");
    }

    #[test]
    fn the_throttle_makes_a_name_and_an_address_wait_after_five_failures() {
        let t = Throttle::default();
        let here: IpAddr = [127, 0, 0, 1].into();
        let there: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FREE_FAILURES {
            t.begin("ada", here).unwrap();
        }
        let w = t.begin("ada", here).unwrap_err();
        assert!(
            w > Duration::from_millis(1500) && w <= Duration::from_secs(2),
            "{w:?}"
        );
        // The name waits from anywhere, the address for any name.
        assert!(t.begin("ada", there).is_err());
        assert!(t.begin("bo", here).is_err());
        t.begin("bo", there).unwrap();
        t.succeeded("bo", there);
        // A success takes its own attempt back: the address stays free.
        for _ in 0..FREE_FAILURES * 2 {
            t.begin("bo", there).unwrap();
            t.succeeded("bo", there);
        }
    }

    #[test]
    fn an_ipv6_host_is_one_address_across_its_64_and_odd_names_count_only_there() {
        let t = Throttle::default();
        for i in 0..FREE_FAILURES as u16 {
            let ip: IpAddr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i).into();
            t.begin(&"x".repeat(70 + usize::from(i)), ip).unwrap();
        }
        let same: IpAddr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 9, 9, 9, 9).into();
        assert!(t.begin("ada", same).is_err());
        assert_eq!(
            t.0.lock().unwrap().len(),
            1,
            "names that are nobody's are not kept"
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
