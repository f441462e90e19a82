//! `concierge keys …`: the data keys that seal identifiers at rest
//! ([`crate::domain::vault`]). `rotate` re-seals every sealed value under the active key,
//! so an old key can then be taken out of the configuration; `status` names the keys.
//!
//! Rotating: add the new key to `[security] data_keys` (or
//! `CONCIERGE__SECURITY__DATA_KEYS__<ID>`), make it `active_key`, restart the servers (new
//! values are sealed under it from then on), run `concierge keys rotate`, then remove the
//! old key. Running it again changes nothing.
//!
//! Changing the lookup secret (`[security] lookup_secret`): set the new one, restart the
//! servers, run `concierge keys rotate`: it recomputes every appointment's phone hash from its
//! sealed phone (until then appointments are not found by phone), then re-seed the sandbox
//! bank if you use it (`concierge sandbox seed`).

use std::process::ExitCode;

use clap::Subcommand;

use super::Global;
use crate::domain::vault::{self, Keyring};
use crate::store::Db;

/// `concierge keys …`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-seal every sealed value (sessions, appointments, outbox payloads) under the
    /// active key and re-key appointments' phone hashes under the lookup secret; prints
    /// how many rows changed.
    Rotate,
    /// The active key and the keys of the ring (ids only).
    Status,
}

/// How many rows a rotation changed, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotated {
    pub sessions: u64,
    pub appointments: u64,
    pub outbox: u64,
}

/// Re-seals everything of `db` under `ring`'s active key.
pub async fn rotate(db: &Db, ring: &Keyring) -> anyhow::Result<Rotated> {
    Ok(Rotated {
        sessions: crate::session::store::reseal_all(db, ring).await?,
        appointments: crate::branch::appointments::reseal_all(db, ring).await?,
        outbox: crate::ports::outbox::reseal_payloads(db, ring).await?,
    })
}

/// Runs one `keys` subcommand against the configured database and keys.
pub(super) async fn run(global: &Global, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let db = global.database().await?;
    let ring = vault::of_pool(&db.pool);
    match cmd {
        KeysCommand::Rotate => {
            let done = rotate(&db, &ring).await?;
            println!("sessions: {}", done.sessions);
            println!("appointments: {}", done.appointments);
            println!("outbox: {}", done.outbox);
            println!(
                "every sealed value is now under key {}; older keys may be removed",
                ring.active_key()
            );
        }
        KeysCommand::Status => {
            println!("active: {}", ring.active_key());
            println!("keys: {}", ring.key_ids().join(", "));
        }
    }
    db.pool.close().await;
    Ok(ExitCode::SUCCESS)
}
