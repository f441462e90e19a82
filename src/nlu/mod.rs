//! Understanding what a customer said. The intent names are a fixed contract (DESIGN.md
//! §NLU contract): other tools rely on them. This module owns the list and the certain,
//! data-declared keyword rules (`dialogs/intents.yaml`).

pub mod rules;

/// Every intent Concierge knows, in the order of DESIGN.md.
pub const INTENTS: [&str; 32] = [
    "greet",
    "goodbye",
    "thanks",
    "affirm",
    "deny",
    "cancel",
    "repeat",
    "help",
    "handoff.teller",
    "handoff.remote_expert",
    "appointment.book",
    "appointment.cancel",
    "appointment.query",
    "queue.take_number",
    "card.report_loss",
    "card.activate",
    "card.apply",
    "account.open",
    "account.balance",
    "account.statement",
    "password.reset",
    "transfer.make",
    "transfer.limit",
    "cash.withdraw",
    "cash.deposit",
    "forex.exchange",
    "wealth.consult",
    "loan.consult",
    "complaint",
    "bill.pay",
    "knowledge.question",
    "out_of_scope",
];

/// True for one of the fixed intent names.
pub fn is_intent(name: &str) -> bool {
    INTENTS.contains(&name)
}
