//! webd's people: a file of `name:role:hash` lines, the hash an argon2id PHC string.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password `add` accepts.
pub const SHORTEST_PASSWORD: usize = 10;

/// One person who may log in.
#[derive(Clone)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The role ctrld's policy gives the calls made for them (`viewer`, `operator`, `admin`).
    pub role: String,
    hash: String,
}

impl User {
    /// A stamp of the password (the hash's own output, random for every password set): a
    /// session opened with another stamp ends.
    pub fn stamp(&self) -> &str {
        self.hash.rsplit('$').next().unwrap_or_default()
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a users file, a name or a password.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not `name:role:hash`.
    #[error("{path}:{line}: {why}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A name, role or password that cannot be taken.
    #[error("{0}")]
    Invalid(String),
}

/// Checks a login or role name: 1 to 64 letters, digits or `._@-` (the names ctrld writes in
/// the logbook).
pub fn check_name(what: &str, name: &str) -> Result<(), UsersError> {
    let fits = |c: char| c.is_alphanumeric() || "._@-".contains(c);
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(fits) {
        return Err(UsersError::Invalid(format!(
            "a {what} is 1 to 64 letters, digits or `._@-` (got `{}`)",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// The people in a users file.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: Vec<User>,
}

impl Users {
    /// Reads `path`; a missing file holds nobody.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let mut users: Vec<User> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| UsersError::Line {
                path: path.to_owned(),
                line: i + 1,
                why,
            };
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(role), Some(hash)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("expected `name:role:hash`".into()));
            };
            check_name("user name", name).map_err(|e| bad(e.to_string()))?;
            check_name("role", role).map_err(|e| bad(e.to_string()))?;
            PasswordHash::new(hash).map_err(|e| bad(format!("not a password hash: {e}")))?;
            if users.iter().any(|u| u.name == name) {
                return Err(bad(format!("`{name}` is there twice")));
            }
            users.push(User {
                name: name.to_owned(),
                role: role.to_owned(),
                hash: hash.to_owned(),
            });
        }
        Ok(Self { users })
    }

    /// The person named `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Everyone, in file order.
    pub fn all(&self) -> &[User] {
        &self.users
    }

    /// Adds `name` with `role` and `password`, or sets a new role and password when `name`
    /// is there already; returns whether the name was new.
    pub fn set(&mut self, name: &str, role: &str, password: &str) -> Result<bool, UsersError> {
        check_name("user name", name)?;
        check_name("role", role)?;
        if password.chars().count() < SHORTEST_PASSWORD {
            return Err(UsersError::Invalid(format!(
                "a password has at least {SHORTEST_PASSWORD} characters"
            )));
        }
        let hash = hash_password(password)?;
        let user = User {
            name: name.to_owned(),
            role: role.to_owned(),
            hash,
        };
        match self.users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                *u = user;
                Ok(false)
            }
            None => {
                self.users.push(user);
                Ok(true)
            }
        }
    }

    /// Removes `name`; returns whether they were there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        self.users.len() != before
    }

    /// Writes the file (readable by its owner only), replacing it whole.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_owned(),
            source,
        };
        let mut text =
            String::from("# webd's users: name:role:argon2id hash (`mqttcal users add`)\n");
        for u in &self.users {
            text.push_str(&format!("{}:{}:{}\n", u.name, u.role, u.hash));
        }
        let tmp = path.with_extension("tmp");
        write_private(&tmp, text.as_bytes()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Writes `bytes` to a new file only its owner may read.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An argon2id hash of `password` (the crate's default cost: 19 MiB, 2 passes), with a
/// random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UsersError::Invalid(format!("no random salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| UsersError::Invalid(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Invalid(format!("cannot hash the password: {e}")))
}

/// A hash no password matches, checked for unknown names so that they take as long as
/// known ones.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password never given").unwrap_or_default())
}

/// The person `name` when `password` is theirs; the same time is spent whether or not the
/// name exists.
pub fn verify<'a>(users: &'a Users, name: &str, password: &str) -> Option<&'a User> {
    let user = users.get(name);
    let hash: &str = match user {
        Some(u) => &u.hash,
        None => decoy(),
    };
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    user.filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_added_logs_in_with_their_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut users = Users::load(&path).unwrap();
        assert!(users.set("ada", "operator", "correct horse").unwrap());
        assert!(users.set("bo", "viewer", "battery staple").unwrap());
        users.save(&path).unwrap();
        let users = Users::load(&path).unwrap();
        assert_eq!(
            verify(&users, "ada", "correct horse").unwrap().role,
            "operator"
        );
        assert!(verify(&users, "ada", "battery staple").is_none());
        assert!(verify(&users, "nobody", "correct horse").is_none());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse"), "{text}");
        assert!(text.contains("ada:operator:$argon2id$"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_names_short_passwords_and_bad_lines_are_refused() {
        let mut users = Users::default();
        assert!(users.set("a:b", "viewer", "long enough pw").is_err());
        assert!(users.set("ada", "view er", "long enough pw").is_err());
        assert!(users.set("ada", "viewer", "short").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "# ok\n\nada:viewer:not-a-hash\n").unwrap();
        let e = Users::load(&path).unwrap_err().to_string();
        assert!(e.contains(":3: not a password hash"), "{e}");
    }
}
