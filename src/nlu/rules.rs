//! Exact rules: whole utterances that make an intent certain ("挂失", "转人工"), declared per
//! intent in `dialogs/intents.yaml`. Compared on the matching form, so "挂失！" and "掛失"
//! hit the same rule; anything longer is left to the classifier.

use std::collections::HashMap;

use crate::text::normalize::normalize;

/// Exact phrases compiled for lookup.
#[derive(Debug, Clone, Default)]
pub struct ExactRules {
    phrases: HashMap<String, String>,
}

impl ExactRules {
    /// From (phrase, intent) pairs; phrases are normalised here.
    pub fn new(rules: impl IntoIterator<Item = (String, String)>) -> ExactRules {
        ExactRules {
            phrases: rules
                .into_iter()
                .map(|(phrase, intent)| (normalize(&phrase).matching, intent))
                .filter(|(p, _)| !p.is_empty())
                .collect(),
        }
    }

    /// The intent an utterance (already in matching form) is exactly a phrase of.
    pub fn lookup(&self, matching: &str) -> Option<&str> {
        self.phrases.get(matching).map(String::as_str)
    }

    /// Every (phrase, intent) pair, for training the classifier on them too.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.phrases.iter().map(|(p, i)| (p.as_str(), i.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_whole_utterance_matches() {
        let rules = ExactRules::new([("挂失".to_string(), "card.report_loss".to_string())]);
        assert_eq!(
            rules.lookup(&normalize("掛失！").matching),
            Some("card.report_loss")
        );
        assert_eq!(
            rules.lookup(&normalize("嗯，挂失").matching),
            Some("card.report_loss")
        );
        assert_eq!(rules.lookup(&normalize("挂失要带什么").matching), None);
    }
}
