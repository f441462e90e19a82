//! Server actions a flow step runs (`action: NAME` in `dialogs/flows/*.yaml`): each is one
//! [`Action`] with its name, the slots it fills on success, and what it does. The
//! [`Registry`] is built once at start-up; the flow validator checks every `action:` step
//! against it ([`crate::dialog::flow::ActionCatalog`]), and the session dispatches to it,
//! so a name cannot be known to one and not the other.
//!
//! To add an action: write it in the file of its domain (or a new one), add it to
//! [`Registry::standard`], and use it in a flow; `concierge validate` checks the rest.

/// Declares `$ty`, an [`Action`] named `$name` that fills `$outputs` and runs
/// `async fn $run(&Call) -> anyhow::Result<EffectResult>`.
macro_rules! action {
    ($(#[$doc:meta])* $ty:ident, $name:literal, [$($out:literal),* $(,)?], $run:path) => {
        $(#[$doc])*
        pub struct $ty;

        impl $crate::actions::Action for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn outputs(&self) -> &'static [&'static str] {
                &[$($out),*]
            }

            fn run<'a>(&'a self, call: &'a $crate::actions::Call<'a>) -> $crate::actions::ActionFuture<'a> {
                Box::pin($run(call))
            }
        }
    };
}

pub mod appointments;
pub mod banking;
pub mod case;
pub mod knowledge;
pub mod queue;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::branch::Branch;
use crate::dialog::flow::ActionCatalog;
use crate::dialog::EffectResult;
use crate::domain::clock::Clock;
use crate::knowledge::Knowledge;
use crate::ports::banking::CoreBanking;

/// The slots of the running flow, by name.
pub type Slots = BTreeMap<String, String>;

/// What running an action gives: its result, or an error that is logged and becomes the
/// flow's `internal` error.
pub type ActionFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<EffectResult>> + Send + 'a>>;

/// The services actions work with.
pub struct Services {
    pub bank: Arc<dyn CoreBanking>,
    pub branch: Arc<Branch>,
    pub knowledge: Arc<Knowledge>,
    /// How services are named to customers ("开户"), by intent.
    pub service_labels: BTreeMap<String, String>,
    /// Today, for the actions that depend on the date.
    pub clock: Arc<dyn Clock>,
}

/// One run of an action: for whom, with which slots.
pub struct Call<'a> {
    pub services: &'a Services,
    pub session_id: &'a str,
    pub kiosk_id: &'a str,
    pub branch_id: &'a str,
    pub slots: &'a Slots,
}

impl Call<'_> {
    /// A slot's value, empty when unset.
    pub fn get(&self, slot: &str) -> &str {
        self.slots.get(slot).map(String::as_str).unwrap_or_default()
    }
}

/// A server action.
pub trait Action: Send + Sync {
    /// The name flows use (`appointment.book`).
    fn name(&self) -> &'static str;
    /// The slots it fills on success.
    fn outputs(&self) -> &'static [&'static str];
    /// Runs it. An expected failure is `Ok(EffectResult::Failed { code, .. })` with a code
    /// the flow can branch on; `Err` is for what should not happen (a database error).
    fn run<'a>(&'a self, call: &'a Call<'a>) -> ActionFuture<'a>;
}

/// Every action, by name.
pub struct Registry {
    actions: BTreeMap<&'static str, Box<dyn Action>>,
}

impl Registry {
    /// The actions Concierge ships.
    pub fn standard() -> Registry {
        let mut r = Registry {
            actions: BTreeMap::new(),
        };
        r.add(Box::new(queue::TakeNumber));
        r.add(Box::new(appointments::Book));
        r.add(Box::new(appointments::Find));
        r.add(Box::new(appointments::Cancel));
        r.add(Box::new(banking::Identify));
        r.add(Box::new(banking::VerifyPhone));
        r.add(Box::new(banking::ChooseCard));
        r.add(Box::new(banking::VerifyPin));
        r.add(Box::new(banking::Balance));
        r.add(Box::new(banking::FreezeCard));
        r.add(Box::new(knowledge::Answer));
        r.add(Box::new(knowledge::Topic));
        r.add(Box::new(case::Prepare));
        r
    }

    fn add(&mut self, action: Box<dyn Action>) {
        let name = action.name();
        assert!(
            self.actions.insert(name, action).is_none(),
            "action `{name}` is registered twice"
        );
    }

    pub fn get(&self, name: &str) -> Option<&dyn Action> {
        self.actions.get(name).map(|a| a.as_ref())
    }

    /// Runs the action `name`; an unknown name is the `unknown_action` failure (the flow
    /// validator makes that impossible for shipped flows).
    pub async fn run(&self, name: &str, call: &Call<'_>) -> anyhow::Result<EffectResult> {
        match self.get(name) {
            Some(action) => action.run(call).await,
            None => Ok(failed("unknown_action", &format!("no action `{name}`"))),
        }
    }
}

impl ActionCatalog for Registry {
    fn outputs(&self, name: &str) -> Option<Vec<String>> {
        self.get(name)
            .map(|a| a.outputs().iter().map(|s| s.to_string()).collect())
    }

    fn names(&self) -> Vec<String> {
        self.actions.keys().map(|s| s.to_string()).collect()
    }
}

/// A failure with a code the flow can branch on and a note for the transcript.
pub fn failed(code: &str, note: &str) -> EffectResult {
    EffectResult::Failed {
        code: code.to_string(),
        note: note.to_string(),
    }
}

/// Success with these output slots.
pub fn done(pairs: &[(&str, String)]) -> EffectResult {
    EffectResult::Done(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_registered_once_under_its_name() {
        let r = Registry::standard();
        let names = r.names();
        assert_eq!(names.len(), 13, "{names:?}");
        for n in &names {
            assert_eq!(r.get(n).unwrap().name(), n);
        }
        assert_eq!(
            r.outputs("queue.take").unwrap(),
            ["ticket", "waiting", "wait_minutes", "counter_type"]
        );
        assert!(r.outputs("no.such").is_none());
    }
}
