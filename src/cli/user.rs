//! `concierge user …`: staff accounts: add, disable, reset a password (read from standard
//! input, never from the command line), revoke every token.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Global;
use crate::access::staff;

/// `concierge user …`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a staff account. Prints a generated password unless --password-stdin is given.
    Add {
        /// Login name.
        #[arg(long)]
        name: String,
        /// Roles, comma-separated: teller, remote_expert, content_editor, content_reviewer, admin.
        #[arg(long = "role", value_name = "ROLES")]
        roles: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Scope the person to one branch (tickets of other branches stay invisible).
        #[arg(long, value_name = "ID")]
        branch: Option<String>,
    },
    /// Disable an account: it can no longer log in and its tokens stop working.
    Disable {
        /// Login name.
        name: String,
    },
    /// Set a new password, read from standard input (prompted for, unechoed, on a
    /// terminal), and revoke the account's tokens.
    ResetPassword {
        /// Login name.
        name: String,
    },
    /// Revoke every live token of an account (it logs in again).
    RevokeTokens {
        /// Login name.
        name: String,
    },
}

/// Runs one `user` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let db = global.database().await?;
    let (found, done) = match cmd {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
            branch,
        } => return add(&db, &name, &roles, password_stdin, branch.as_deref()).await,
        UserCommand::Disable { name } => (
            staff::disable(&db, &name).await?,
            format!("user {name} disabled; its tokens are revoked"),
        ),
        UserCommand::ResetPassword { name } => {
            let password = read_password()?;
            (
                staff::reset_password(&db, &name, &password).await?,
                format!("password of {name} reset; its tokens are revoked"),
            )
        }
        UserCommand::RevokeTokens { name } => {
            let n = staff::revoke_tokens(&db, &name).await?;
            (
                n.is_some(),
                format!("{} token(s) of {name} revoked", n.unwrap_or(0)),
            )
        }
    };
    if !found {
        anyhow::bail!("no such user");
    }
    eprintln!("{done}");
    Ok(ExitCode::SUCCESS)
}

/// `user add`.
async fn add(
    db: &crate::store::Db,
    name: &str,
    roles: &str,
    password_stdin: bool,
    branch: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (password, generated) = if password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the password from stdin")?;
        (s.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (crate::access::tokens::generate_password(), true)
    };
    let user = staff::add_user(db, name, roles, &password).await?;
    if let Some(b) = branch {
        staff::set_branch(db, &user.name, Some(b)).await?;
    }
    eprintln!(
        "user {} created with roles {}{}",
        user.name,
        crate::access::Role::join(&user.roles),
        branch.map(|b| format!(", branch {b}")).unwrap_or_default()
    );
    if generated {
        eprintln!("password (shown once, keep it):");
        println!("{password}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The new password: the first line of standard input; on a terminal, prompted for with
/// echo turned off.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("new password: ");
        std::io::stderr().flush().ok();
    }
    let echo = terminal.then(EchoOff::new).flatten();
    let mut line = String::new();
    let read = stdin.lock().take(1024).read_line(&mut line);
    drop(echo);
    if terminal {
        eprintln!();
    }
    read.context("read the new password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Terminal echo turned off while it lives.
struct EchoOff {
    #[cfg(unix)]
    saved: libc::termios,
}

impl EchoOff {
    #[cfg(unix)]
    fn new() -> Option<EchoOff> {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios value we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(EchoOff { saved })
        }
    }

    #[cfg(not(unix))]
    fn new() -> Option<EchoOff> {
        None
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: restores the settings read in `new`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.saved);
        }
    }
}
