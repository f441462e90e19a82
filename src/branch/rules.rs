//! The branch file (`deploy/config/branch.yaml`): the calendar (open hours, weekdays,
//! holidays), appointment capacity and reminders, and the queue lines with the services
//! each serves. One file, so opening hours are written once for appointments, the queue
//! and the SLA clock of tickets. Every problem is reported as `file:line: message`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::calendar::Calendar;
use crate::datafile::{load_with, parse_yaml, DataError, Problems};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct BranchFile {
    calendar: CalendarSpec,
    appointments: AppointmentSpec,
    queue: QueueSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarSpec {
    opens: String,
    closes: String,
    weekdays: Vec<u32>,
    #[serde(default)]
    holidays: Vec<String>,
}

/// Appointments: capacity per 30-minute slot by service (`default` for the others) and
/// when the reminder goes out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentSpec {
    pub capacity_per_slot: BTreeMap<String, u32>,
    #[serde(default = "default_remind_hours")]
    pub remind_hours_before: u32,
}

fn default_remind_hours() -> u32 {
    24
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    lines: Vec<LineSpec>,
}

/// A queue line: its letter, the counter that serves it, and its services (a line with
/// no services takes every service no other line names).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    pub line: String,
    pub counter: String,
    #[serde(default)]
    pub services: Vec<String>,
}

/// The validated branch file.
#[derive(Debug, Clone)]
pub struct BranchRules {
    pub calendar: Calendar,
    pub appointments: AppointmentSpec,
    /// The queue lines, in the order of the file.
    pub lines: Vec<LineSpec>,
}

impl BranchRules {
    /// Reads and validates the branch file.
    pub fn load(path: &Path) -> Result<BranchRules, Vec<DataError>> {
        load_with(path, BranchRules::parse)
    }

    pub fn parse(path: &Path, text: &str) -> Result<BranchRules, Vec<DataError>> {
        let mut errors = Vec::new();
        let Some(spec): Option<BranchFile> = parse_yaml(path, text, &mut errors) else {
            return Err(errors);
        };
        let mut p = Problems::new(path, text);
        let c = &spec.calendar;
        let time = |s: &str| chrono::NaiveTime::parse_from_str(s, "%H:%M").ok();
        let (opens, closes) = (time(&c.opens), time(&c.closes));
        if opens.is_none() || closes.is_none() || opens >= closes {
            p.at(
                "opens:",
                "calendar: opens and closes are HH:MM, opens first".into(),
            );
        }
        if c.weekdays.is_empty() || c.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            p.at(
                "weekdays:",
                "calendar: weekdays are 1 (Monday) … 7 (Sunday)".into(),
            );
        }
        let mut holidays = BTreeSet::new();
        for h in &c.holidays {
            match chrono::NaiveDate::parse_from_str(h, "%Y-%m-%d") {
                Ok(d) => {
                    holidays.insert(d);
                }
                Err(_) => p.at(h, format!("holiday `{h}` is not a date like 2026-10-01")),
            }
        }
        let capacity = &spec.appointments.capacity_per_slot;
        if !capacity.contains_key("default") {
            p.at(
                "capacity_per_slot:",
                "appointments: capacity_per_slot needs a `default`".into(),
            );
        }
        if let Some((service, _)) = capacity.iter().find(|(_, n)| **n == 0) {
            p.at(
                "capacity_per_slot:",
                format!("appointments: capacity of `{service}` must be at least 1"),
            );
        }
        check_lines(&spec.queue.lines, &mut p);
        p.or_value(|| BranchRules {
            calendar: Calendar {
                opens: opens.unwrap_or_default(),
                closes: closes.unwrap_or_default(),
                weekdays: c.weekdays.iter().copied().collect(),
                holidays,
            },
            appointments: spec.appointments.clone(),
            lines: spec.queue.lines.clone(),
        })
    }

    /// Appointments per 30-minute slot for `service`.
    pub fn capacity_of(&self, service: &str) -> u32 {
        let c = &self.appointments.capacity_per_slot;
        c.get(service)
            .or_else(|| c.get("default"))
            .copied()
            .unwrap_or(1)
    }

    /// The queue line and counter for `service`: the line that names it, else the line
    /// without services.
    pub fn line_of(&self, service: &str) -> &LineSpec {
        self.lines
            .iter()
            .find(|l| l.services.iter().any(|s| s == service))
            .or_else(|| self.lines.iter().find(|l| l.services.is_empty()))
            .unwrap_or(&self.lines[0])
    }

    /// The letters of the lines.
    pub fn line_names(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.line.as_str())
    }
}

/// Lines are one capital letter each, unique; exactly one line takes the other services;
/// a service belongs to one line.
fn check_lines(lines: &[LineSpec], p: &mut Problems<'_>) {
    if lines.is_empty() {
        p.at("lines:", "queue: at least one line is needed".into());
        return;
    }
    let mut seen = BTreeSet::new();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for l in lines {
        let needle = format!("line: {}", l.line);
        if l.line.len() != 1 || !l.line.chars().all(|c| c.is_ascii_uppercase()) {
            p.at(
                &needle,
                format!("queue: line `{}` must be one capital letter", l.line),
            );
        }
        if !seen.insert(l.line.as_str()) {
            p.at(&needle, format!("queue: line `{}` is listed twice", l.line));
        }
        if l.counter.trim().is_empty() {
            p.at(
                &needle,
                format!("queue: line `{}` names no counter", l.line),
            );
        }
        for s in &l.services {
            if let Some(other) = owner.insert(s, &l.line) {
                p.at(
                    s,
                    format!("queue: service `{s}` is on line `{other}` and `{}`", l.line),
                );
            }
        }
    }
    let catch_all = lines.iter().filter(|l| l.services.is_empty()).count();
    if catch_all != 1 {
        p.at(
            "lines:",
            format!("queue: exactly one line takes the other services (has no `services`); found {catch_all}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_branch_file_is_valid_and_routes_services() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config/branch.yaml");
        let rules = BranchRules::load(&path).unwrap();
        assert_eq!(rules.line_of("wealth.consult").line, "V");
        assert_eq!(rules.line_of("account.open").line, "B");
        assert_eq!(rules.line_of("cash.withdraw").line, "A");
        assert_eq!(rules.line_of("").counter, "现金业务窗口");
        assert_eq!(rules.capacity_of("wealth.consult"), 1);
        assert_eq!(rules.capacity_of("account.open"), 3);
    }

    #[test]
    fn a_bad_branch_file_points_at_its_lines() {
        let text = "calendar:\n  opens: \"18:00\"\n  closes: \"09:00\"\n  weekdays: [8]\nappointments:\n  capacity_per_slot: {wealth.consult: 0}\nqueue:\n  lines:\n    - {line: A, counter: 现金, services: [x]}\n    - {line: A, counter: 非现金, services: [x]}\n";
        let errors = BranchRules::parse(Path::new("b.yaml"), text).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert!(lines.contains(&2), "{errors:?}"); // opens after closes
        assert!(lines.contains(&4), "{errors:?}"); // weekday 8
        assert!(lines.contains(&6), "{errors:?}"); // no default, capacity 0
        assert!(lines.contains(&9), "{errors:?}"); // line A twice / service twice
        assert!(errors.iter().any(|e| e.message.contains("other services")));
    }
}
