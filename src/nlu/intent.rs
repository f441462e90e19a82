//! The intents the engine acts on itself, wherever the customer is in a journey (yes, no,
//! cancel, repeat, a person…), as a type. The service intents start their flows by name
//! (`dialogs/flows/`); every intent name is in [`super::INTENTS`].

use kiosk_protocol::HandoffKind;

/// A conversational intent: not a service, but a move in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemIntent {
    Greet,
    Goodbye,
    Thanks,
    Affirm,
    Deny,
    Cancel,
    Repeat,
    Help,
    HandoffTeller,
    HandoffRemoteExpert,
    OutOfScope,
}

impl SystemIntent {
    pub const ALL: [SystemIntent; 11] = [
        SystemIntent::Greet,
        SystemIntent::Goodbye,
        SystemIntent::Thanks,
        SystemIntent::Affirm,
        SystemIntent::Deny,
        SystemIntent::Cancel,
        SystemIntent::Repeat,
        SystemIntent::Help,
        SystemIntent::HandoffTeller,
        SystemIntent::HandoffRemoteExpert,
        SystemIntent::OutOfScope,
    ];

    /// The intent's name, as the NLU and the data files write it.
    pub fn name(self) -> &'static str {
        match self {
            SystemIntent::Greet => "greet",
            SystemIntent::Goodbye => "goodbye",
            SystemIntent::Thanks => "thanks",
            SystemIntent::Affirm => "affirm",
            SystemIntent::Deny => "deny",
            SystemIntent::Cancel => "cancel",
            SystemIntent::Repeat => "repeat",
            SystemIntent::Help => "help",
            SystemIntent::HandoffTeller => "handoff.teller",
            SystemIntent::HandoffRemoteExpert => "handoff.remote_expert",
            SystemIntent::OutOfScope => "out_of_scope",
        }
    }

    /// The system intent of that name, if it is one.
    pub fn of(name: &str) -> Option<SystemIntent> {
        SystemIntent::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Who the customer asked for, for the two handoff intents.
    pub fn handoff(self) -> Option<HandoffKind> {
        match self {
            SystemIntent::HandoffTeller => Some(HandoffKind::Teller),
            SystemIntent::HandoffRemoteExpert => Some(HandoffKind::RemoteExpert),
            _ => None,
        }
    }

    /// The handoff intent that asks for `to`.
    pub fn asking_for(to: HandoffKind) -> SystemIntent {
        match to {
            HandoffKind::Teller => SystemIntent::HandoffTeller,
            HandoffKind::RemoteExpert => SystemIntent::HandoffRemoteExpert,
        }
    }

    /// Moves of the conversation (你好, 不用了, 算了), not requests for a person.
    pub fn is_conversational(self) -> bool {
        self.handoff().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_system_intent_is_an_intent_and_reads_back() {
        for i in SystemIntent::ALL {
            assert!(super::super::is_intent(i.name()), "{}", i.name());
            assert_eq!(SystemIntent::of(i.name()), Some(i));
        }
        assert_eq!(SystemIntent::of("account.open"), None);
    }
}
