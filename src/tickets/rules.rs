//! Ticket rules as data (`deploy/config/tickets.yaml`): queues with the roles that work them
//! and a supervisor, ticket types with their queue and SLA (business minutes of the branch
//! calendar, [`crate::branch::calendar`]), priority rules and auto-close. Every problem is
//! reported as `file:line: message`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::access::Role;
use crate::datafile::DataError;
use crate::datafile::{line_of, parse_yaml, read_data_file};

/// Priorities, lowest first.
pub const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
/// Conditions a priority rule may test.
pub const CONDITIONS: [&str; 3] = ["fraud", "vip", "complaint"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    queues: BTreeMap<String, QueueSpec>,
    types: BTreeMap<String, TypeSpec>,
    #[serde(default)]
    priority: Vec<PrioritySpec>,
    auto_close_resolved_hours: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub skills: Vec<String>,
    pub supervisor: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    pub queue: String,
    pub first_response_mins: u32,
    pub resolution_mins: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrioritySpec {
    when: String,
    priority: String,
}

/// A queue: who works it and who is told when its SLAs break.
#[derive(Debug, Clone)]
pub struct Queue {
    pub skills: Vec<Role>,
    pub supervisor: String,
}

/// The validated rules.
#[derive(Debug, Clone)]
pub struct Rules {
    pub queues: BTreeMap<String, Queue>,
    pub types: BTreeMap<String, TypeSpec>,
    /// (condition, priority), first match wins.
    pub priority: Vec<(String, String)>,
    pub auto_close_resolved_hours: u32,
}

impl Rules {
    /// Reads and validates the rules file.
    pub fn load(path: &Path) -> Result<Rules, Vec<DataError>> {
        let mut errors = Vec::new();
        let Some(text) = read_data_file(path, &mut errors) else {
            return Err(errors);
        };
        Rules::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Rules, Vec<DataError>> {
        let mut errors = Vec::new();
        let Some(spec): Option<RulesFile> = parse_yaml(path, text, &mut errors) else {
            return Err(errors);
        };
        let mut bad = |needle: &str, message: String| {
            errors.push(DataError {
                file: path.to_path_buf(),
                line: line_of(text, needle),
                message,
            })
        };
        let mut queues = BTreeMap::new();
        for (name, q) in &spec.queues {
            let mut skills = Vec::new();
            for s in &q.skills {
                match Role::parse(s) {
                    Some(r @ (Role::Teller | Role::RemoteExpert)) => skills.push(r),
                    _ => bad(
                        &format!("{name}:"),
                        format!("queue `{name}`: skill `{s}` is not teller or remote_expert"),
                    ),
                }
            }
            if skills.is_empty() {
                bad(&format!("{name}:"), format!("queue `{name}` has no skills"));
            }
            queues.insert(
                name.clone(),
                Queue {
                    skills,
                    supervisor: q.supervisor.clone(),
                },
            );
        }
        for (name, t) in &spec.types {
            if !spec.queues.contains_key(&t.queue) {
                bad(
                    &format!("{name}:"),
                    format!("type `{name}`: no queue `{}`", t.queue),
                );
            }
            if t.first_response_mins == 0 || t.resolution_mins < t.first_response_mins {
                bad(
                    &format!("{name}:"),
                    format!(
                        "type `{name}`: SLA minutes must be > 0 and resolution ≥ first response"
                    ),
                );
            }
        }
        for needed in ["handoff", "handoff_remote"] {
            if !spec.types.contains_key(needed) {
                bad(
                    "types:",
                    format!("a type `{needed}` is needed (kiosk handoffs)"),
                );
            }
        }
        let mut priority = Vec::new();
        for p in &spec.priority {
            if !CONDITIONS.contains(&p.when.as_str()) {
                bad(
                    &format!("when: {}", p.when),
                    format!("condition `{}` is not one of {CONDITIONS:?}", p.when),
                );
            }
            if !PRIORITIES.contains(&p.priority.as_str()) {
                bad(
                    &format!("priority: {}", p.priority),
                    format!("priority `{}` is not one of {PRIORITIES:?}", p.priority),
                );
            }
            priority.push((p.when.clone(), p.priority.clone()));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Rules {
            queues,
            types: spec.types,
            priority,
            auto_close_resolved_hours: spec.auto_close_resolved_hours,
        })
    }

    /// The priority of a new ticket: the first rule whose condition holds.
    pub fn priority_of(&self, conditions: &[&str]) -> String {
        self.priority
            .iter()
            .find(|(when, _)| conditions.contains(&when.as_str()))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| "normal".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_rules_are_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/tickets.yaml");
        let rules = Rules::load(&path).unwrap();
        assert_eq!(rules.types["handoff"].queue, "counter");
        assert_eq!(rules.priority_of(&["vip", "fraud"]), "urgent");
        assert_eq!(rules.priority_of(&[]), "normal");
    }

    #[test]
    fn bad_rules_point_at_their_lines() {
        let text = "queues:\n  counter:\n    skills: [boss]\n    supervisor: s\ntypes:\n  handoff: {queue: nowhere, first_response_mins: 5, resolution_mins: 30}\npriority:\n  - {when: rich, priority: urgent}\nauto_close_resolved_hours: 1\n";
        let errors = Rules::parse(Path::new("t.yaml"), text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert!(lines.contains(&2), "{errors:?}"); // bad skill
        assert!(lines.contains(&6), "{errors:?}"); // no such queue
        assert!(lines.contains(&8), "{errors:?}"); // unknown condition
        assert!(errors.iter().any(|e| e.message.contains("handoff_remote")));
    }
}
