//! webd's people: a file of `name:role:hash` lines, the hash an argon2id PHC string.

use std::path::{Path, PathBuf};

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
            let parsed =
                PasswordHash::new(hash).map_err(|e| bad(format!("not a password hash: {e}")))?;
            match Params::try_from(&parsed) {
                Ok(p) if p.m_cost() <= LARGEST_M_COST => {}
                Ok(p) => {
                    return Err(bad(format!(
                        "the hash asks for {} MiB; at most {} MiB",
                        p.m_cost() / 1024,
                        LARGEST_M_COST / 1024
                    )))
                }
                Err(e) => return Err(bad(format!("not an argon2 hash: {e}"))),
            }
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

/// The cost of new hashes: 7 MiB and 5 passes, one of OWASP's equivalent argon2id settings
/// (19 MiB and 2 passes is another), the one that keeps least memory in the server.
fn params() -> Params {
    Params::new(7 * 1024, 5, 1, None).expect("valid argon2 parameters")
}

/// The most memory a hash of the users file may ask for at a check (256 MiB): more is
/// refused when the file is read.
const LARGEST_M_COST: u32 = 256 * 1024;

/// An argon2id hash of `password` (7 MiB, 5 passes), with a random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| UsersError::Invalid(format!("no random salt: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| UsersError::Invalid(format!("salt: {e}")))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
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
    let ok = matches(hash, password).unwrap_or(false);
    user.filter(|_| ok)
}

/// Memory of earlier checks, kept for the next (two at most, as two checks run at once):
/// allocated afresh each time, the allocator would keep every thread's copy.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Whether `password` hashes to the PHC string `hash`, compared in constant time.
fn matches(hash: &str, password: &str) -> Result<bool, argon2::password_hash::Error> {
    use argon2::password_hash::Error;
    let parsed = PasswordHash::new(hash)?;
    let params = Params::try_from(&parsed)?;
    if params.m_cost() > LARGEST_M_COST {
        return Err(Error::ParamValueInvalid(
            argon2::password_hash::errors::InvalidValue::TooLong,
        ));
    }
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let mut salt = [0u8; 64];
    let salt = parsed
        .salt
        .ok_or(Error::SaltInvalid(
            argon2::password_hash::errors::InvalidValue::TooShort,
        ))?
        .decode_b64(&mut salt)?;
    let expected = parsed.hash.ok_or(Error::Password)?;
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let mut memory = {
        let mut kept = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        match kept.iter().position(|m| m.len() == blocks) {
            Some(i) => kept.swap_remove(i),
            None => vec![Block::default(); blocks],
        }
    };
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        &mut memory,
    );
    {
        let mut kept = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < 2 {
            kept.push(memory);
        }
    }
    hashed.map_err(|_| Error::Password)?;
    Ok(crate::sessions::same_bytes(&out, expected.as_bytes()))
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
    fn hashes_of_other_costs_verify_and_greedy_ones_are_refused() {
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let default = Argon2::default()
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        assert!(default.contains("m=19456,t=2"), "{default}");
        assert!(matches(&default, "correct horse").unwrap());
        assert!(!matches(&default, "correct horsE").unwrap());
        assert!(hash_password("x").unwrap().contains("m=7168,t=5,p=1"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let greedy = default.replace("m=19456", "m=4194304");
        std::fs::write(&path, format!("ada:viewer:{greedy}\n")).unwrap();
        let e = Users::load(&path).unwrap_err().to_string();
        assert!(e.contains("asks for 4096 MiB"), "{e}");
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
