//! `users`: the people who may log in to webd, in its users file.

use std::io::BufRead;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use mqttcal_webd::{Users, WebdConfig};

use super::connect::Settings;
use super::Failure;

/// Arguments of `users`.
#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    /// The users file: by default the `webd.users_file` of --config, else `webd-users` (the
    /// lab's is `<database>.webd/users`, e.g. `mqttcal-lab.db.webd/users`)
    #[arg(long, global = true)]
    file: Option<PathBuf>,
    #[command(subcommand)]
    what: UsersCommand,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a person, or give one a new role and password; the password is read from the
    /// first line of standard input (at least 10 characters)
    Add {
        /// Their login name
        name: String,
        /// Their role in ctrld's policy (`viewer`, `operator`, `admin`, or one of yours)
        #[arg(long)]
        role: String,
    },
    /// Remove a person (their sessions end at their next request)
    Remove {
        /// Their login name
        name: String,
    },
    /// List the people and their roles
    List,
}

pub(crate) fn users(a: UsersArgs, settings: &Settings) -> Result<(), Failure> {
    let file = match a.file {
        Some(f) => f,
        None => {
            super::run::section::<WebdConfig>(settings, "webd")?
                .unwrap_or_default()
                .users_file
        }
    };
    let mut users = Users::load(&file).map_err(|e| Failure::usage(e.to_string()))?;
    match a.what {
        UsersCommand::List => {
            for u in users.all() {
                println!("{} {}", u.name, u.role);
            }
            Ok(())
        }
        UsersCommand::Add { name, role } => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!(
                    "password for {name} (shown as typed; pipe it in to keep it off the screen):"
                );
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|e| Failure::usage(format!("cannot read the password: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let new = users
                .set(&name, &role, password)
                .map_err(|e| Failure::usage(e.to_string()))?;
            users
                .save(&file)
                .map_err(|e| Failure::resource(e.to_string()))?;
            println!(
                "{} {name} ({role}) in {}",
                if new { "added" } else { "updated" },
                file.display()
            );
            Ok(())
        }
        UsersCommand::Remove { name } => {
            if !users.remove(&name) {
                return Err(Failure::usage(format!(
                    "{} has no user `{name}`",
                    file.display()
                )));
            }
            users
                .save(&file)
                .map_err(|e| Failure::resource(e.to_string()))?;
            println!("removed {name} from {}", file.display());
            Ok(())
        }
    }
}
