//! Concierge's ports to systems outside it: the bank's core system ([`banking`]: sandbox
//! or HTTP) and notifications delivered through the outbox to webhooks ([`outbox`]).

pub mod banking;
pub mod outbox;
