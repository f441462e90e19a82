//! `concierge audit …`: the hash-chained audit log of ticket events and its HMAC anchor
//! (`[audit] anchor_secret`, see [`crate::tickets::anchor`]).

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;
use crate::tickets::anchor::{self, AnchorCheck, AnchorKey};

/// `concierge audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the chain of ticket events, then check the anchor of its head (with
    /// `[audit] anchor_secret`); exit 1 at the first link or anchor that does not match.
    Verify,
    /// Verify the chain, then seal its current head with `[audit] anchor_secret` (after
    /// setting or changing the secret).
    Anchor,
}

/// Runs one `audit` subcommand against the database.
pub(super) async fn run(global: &Global, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let settings = global.settings()?;
    let key = AnchorKey::from_settings(&settings.audit);
    let db = crate::startup::open_database(&settings).await?;
    let n = match crate::tickets::verify_chain(&db).await? {
        (n, None) => {
            println!("ok: {n} link(s), the chain is intact");
            n
        }
        (n, Some(broken)) => {
            eprintln!("broken after {n} good link(s): {broken}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let Some(key) = key else {
        match cmd {
            AuditCommand::Verify => {
                println!("note: no [audit] anchor_secret, the head's anchor is not checked");
                return Ok(ExitCode::SUCCESS);
            }
            AuditCommand::Anchor => {
                eprintln!("set [audit] anchor_secret (CONCIERGE__AUDIT__ANCHOR_SECRET) first");
                return Ok(ExitCode::from(2));
            }
        }
    };
    if let AuditCommand::Anchor = cmd {
        let sealed = anchor::seal_head(&db, &key).await?;
        println!("sealed: the head of {sealed} link(s) is anchored");
        return Ok(ExitCode::SUCCESS);
    }
    match anchor::check(&db, &key).await? {
        AnchorCheck::Sealed { count, hash } => {
            println!("ok: the anchor seals the head: link {count}, hash {hash}");
            Ok(ExitCode::SUCCESS)
        }
        AnchorCheck::Empty => {
            println!("ok: the chain is empty, nothing to anchor yet");
            Ok(ExitCode::SUCCESS)
        }
        AnchorCheck::Missing { count } => {
            eprintln!(
                "the head (link {count}) carries no anchor: a node without the secret wrote \
                 it, or the anchor was removed ({n} link(s) walked)"
            );
            Ok(ExitCode::FAILURE)
        }
        AnchorCheck::Mismatch { count } => {
            eprintln!(
                "the anchor does not match the head (link {count}): the chain was rewritten, \
                 or [audit] anchor_secret differs from the one that sealed it"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
