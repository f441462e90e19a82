//! `concierge kiosk …`: register kiosks and manage their device tokens.

use std::process::ExitCode;

use clap::Subcommand;
use kiosk_protocol::PeerRole;

use super::Global;
use crate::access::kiosks;

/// `concierge kiosk …`.
#[derive(Subcommand)]
pub enum KioskCommand {
    /// Register a kiosk (or add a token to a registered one) and print its token once.
    /// Only a hash of the token is stored: keep the printed token.
    Register {
        /// Kiosk id, e.g. K001 (letters, digits, - and _).
        #[arg(long)]
        id: String,
        /// Branch id, e.g. B001.
        #[arg(long)]
        branch: String,
        /// Which peer the token is for: the screen, or the kiosk-adapter (devices).
        #[arg(long, value_enum, default_value = "screen")]
        role: RoleArg,
    },
    /// Revoke every token of a kiosk (a stolen or retired kiosk), or with `--keep-newest`
    /// all but the newest of each role (rotation: register a new token, install it, then
    /// revoke the older ones; live connections on old tokens close within seconds).
    Revoke {
        #[arg(long)]
        id: String,
        #[arg(long)]
        keep_newest: bool,
    },
    /// List registered kiosks.
    List,
}

/// The peer a kiosk token is for, as `--role` spells it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Screen,
    Devices,
}

/// Runs one `kiosk` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: KioskCommand) -> anyhow::Result<ExitCode> {
    let db = global.database().await?;
    match cmd {
        KioskCommand::Register { id, branch, role } => {
            let role = match role {
                RoleArg::Screen => PeerRole::Screen,
                RoleArg::Devices => PeerRole::Devices,
            };
            let token = kiosks::register(&db, &id, &branch, role).await?;
            eprintln!(
                "kiosk {id} (branch {branch}) registered; {} token (shown once, keep it):",
                kiosks::role_str(role)
            );
            println!("{token}");
        }
        KioskCommand::Revoke { id, keep_newest } => {
            let n = if keep_newest {
                kiosks::revoke_older_tokens(&db, &id).await?
            } else {
                kiosks::revoke_tokens(&db, &id).await?
            };
            println!("revoked {n} token(s) of kiosk {id}");
        }
        KioskCommand::List => {
            for k in kiosks::list(&db).await? {
                println!(
                    "{}\t{}\t{}",
                    k.id,
                    k.branch_id,
                    if k.enabled { "enabled" } else { "disabled" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
