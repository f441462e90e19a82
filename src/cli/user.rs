//! `concierge user …`: staff accounts.

use std::io::Read;
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
}

/// Runs one `user` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let UserCommand::Add {
        name,
        roles,
        password_stdin,
        branch,
    } = cmd;
    let db = global.database().await?;
    let (password, generated) = if password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the password from stdin")?;
        (s.trim_end_matches(['\r', '\n']).to_string(), false)
    } else {
        (crate::access::tokens::generate_password(), true)
    };
    let user = staff::add_user(&db, &name, &roles, &password).await?;
    if let Some(b) = &branch {
        staff::set_branch(&db, &user.name, Some(b)).await?;
    }
    eprintln!(
        "user {} created with roles {}{}",
        user.name,
        crate::access::Role::join(&user.roles),
        branch
            .as_deref()
            .map(|b| format!(", branch {b}"))
            .unwrap_or_default()
    );
    if generated {
        eprintln!("password (shown once, keep it):");
        println!("{password}");
    }
    Ok(ExitCode::SUCCESS)
}
