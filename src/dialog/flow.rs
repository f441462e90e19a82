//! Flows: the multi-step journeys, as data (`dialogs/flows/*.yaml`, one flow per file).
//!
//! A flow is a list of steps, run top to bottom unless a step jumps:
//!
//! | step | does |
//! |---|---|
//! | `say: TEXT` | says TEXT (a string, or a list of variants), goes on |
//! | `ask: SLOT` | asks for SLOT with `prompt` until it is filled (`retries`, then a person is offered) |
//! | `confirm: TEXT` | asks yes/no; yes goes on, no goes to `on_no` (default: the flow is cancelled) |
//! | `device: KIND` + `action` | runs a kiosk device (`args`, `timeout_ms`); failure goes to `on_error` |
//! | `action: NAME` | runs a server action (booking, banking…); its outputs become slots; failure goes to `on_error` |
//! | `branch:` | a list of `{when: COND, goto: ID}`; the first true one jumps, else it goes on |
//! | `handoff: teller\|remote_expert` | hands the customer to a person with the case so far, ends the flow |
//! | `goto: ID` | jumps (alone, or after a say, device or action step instead of going on) |
//! | `end: TEXT` | says TEXT (optional) and ends the flow |
//!
//! Any step may carry an `id` (a jump target) and `clear: [SLOT…]` (forget those slots
//! before the step runs, to ask them again). Texts are templates: `{slot}` is replaced by
//! the slot's display value. A condition is `SLOT` (is set), `!SLOT` (is not set),
//! `SLOT == VALUE`, `SLOT != VALUE`, or a number comparison `SLOT > N` (also `>=`, `<`, `<=`).
//!
//! Everything is checked at load with `file:line` errors: unknown step kinds, slots,
//! actions, devices and jump targets, asks without a prompt, templates naming slots the flow
//! never fills, and steps no path reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiosk_protocol::HandoffKind;
use serde::{Deserialize, Serialize};

use crate::datafile::{line_of, line_of_after, parse_yaml, read_data_file, yaml_files, DataError};
use crate::nlu;

/// Slots the understanding fills (DESIGN.md §NLU contract).
pub const NLU_SLOTS: &[&str] = &[
    "date",
    "time",
    "amount",
    "currency",
    "phone",
    "id_number",
    "card_number",
    "card_last4",
    "service",
];

/// The server actions flows may call and the slots each fills on success: the action
/// registry ([`crate::actions::Registry`]) as the validator sees it.
pub trait ActionCatalog {
    /// The slots `name` fills, or `None` when there is no such action.
    fn outputs(&self, name: &str) -> Option<Vec<String>>;
    /// Every action name, sorted.
    fn names(&self) -> Vec<String>;
}

/// Device kinds a kiosk may have: those of the kiosk protocol's actions.
pub fn devices() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in kiosk_protocol::devices::Action::ALL {
        let (device, _) = a.names();
        if !out.contains(&device) {
            out.push(device);
        }
    }
    out
}

/// A text, or several variants of it (one is chosen per turn).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    pub fn variants(&self) -> Vec<&str> {
        match self {
            Texts::One(s) => vec![s.as_str()],
            Texts::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }

    /// Variant `n` (wrapping).
    pub fn pick(&self, n: usize) -> &str {
        let v = self.variants();
        v.get(n % v.len().max(1)).copied().unwrap_or_default()
    }
}

/// A button offered by an `ask` or `confirm` step; tapping it answers with `value`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FlowChoice {
    pub label: String,
    pub value: String,
}

/// One case of a `branch` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BranchCase {
    pub when: String,
    pub goto: String,
}

/// A step as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    #[serde(default)]
    pub id: Option<String>,
    // kinds (exactly one)
    #[serde(default)]
    pub say: Option<Texts>,
    #[serde(default)]
    pub ask: Option<String>,
    #[serde(default)]
    pub confirm: Option<Texts>,
    #[serde(default)]
    pub device: Option<String>,
    /// With `device`: the device action; alone: a server action.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub branch: Option<Vec<BranchCase>>,
    #[serde(default)]
    pub handoff: Option<String>,
    #[serde(default)]
    pub goto: Option<String>,
    #[serde(default)]
    pub end: Option<EndSpec>,
    // modifiers
    #[serde(default)]
    pub prompt: Option<Texts>,
    #[serde(default)]
    pub choices: Vec<FlowChoice>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub on_no: Option<String>,
    #[serde(default)]
    pub on_error: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Device result fields to keep as slots.
    #[serde(default)]
    pub save: Vec<String>,
    /// With `say`: fields shown on screen only (label → template), never spoken nor written
    /// to the transcript. The only place a sensitive slot (balance) may appear.
    #[serde(default)]
    pub show: BTreeMap<String, String>,
    /// With `say` or `end`: a knowledge article id (template) shown in full on screen.
    #[serde(default)]
    pub article: Option<String>,
    /// Slots to forget before this step runs (to ask them again).
    #[serde(default)]
    pub clear: Vec<String>,
    /// `false` on a `say` the customer must hear in full (a risk disclosure): talking over
    /// the bot does not cut it off.
    #[serde(default)]
    pub interruptible: Option<bool>,
}

/// Slots that are shown on screen only, never in spoken or transcribed text.
pub const SCREEN_ONLY_SLOTS: &[&str] = &["balance"];

/// `end: true` or `end: TEXT`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EndSpec {
    Flag(bool),
    Say(Texts),
}

/// A flow file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowFile {
    flow: String,
    #[serde(default)]
    description: String,
    /// Slots this flow uses besides the NLU slots and action outputs.
    #[serde(default)]
    slots: Vec<String>,
    /// Money moves in this flow: a fraud flag stops it.
    #[serde(default)]
    moves_money: bool,
    steps: Vec<StepSpec>,
}

/// The kind of a step, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Say(Texts),
    Ask { slot: String },
    Confirm(Texts),
    Device { device: String, action: String },
    Action(String),
    Branch(Vec<BranchCase>),
    Handoff(HandoffKind),
    Goto(String),
    End(Option<Texts>),
}

/// A validated step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub kind: Kind,
    pub spec: StepSpec,
    pub line: usize,
}

/// A validated flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub name: String,
    pub description: String,
    pub moves_money: bool,
    pub steps: Vec<Step>,
    /// Step id → index.
    pub ids: BTreeMap<String, usize>,
    pub file: PathBuf,
}

impl Flow {
    /// The index of a jump target (validated at load).
    pub fn target(&self, id: &str) -> usize {
        self.ids.get(id).copied().unwrap_or(self.steps.len())
    }
}

/// Loads every `dir/flows/*.yaml` (the folder is optional).
pub fn load_flows(
    dir: &Path,
    catalog: &dyn ActionCatalog,
    errors: &mut Vec<DataError>,
) -> BTreeMap<String, Flow> {
    let folder = dir.join("flows");
    let mut flows = BTreeMap::new();
    if !folder.is_dir() {
        return flows;
    }
    let files = yaml_files(&folder, errors);
    for file in files {
        let Some(text) = read_data_file(&file, errors) else {
            continue;
        };
        let Some(spec) = parse_yaml::<FlowFile>(&file, &text, errors) else {
            continue;
        };
        if let Some(flow) = validate(spec, &file, &text, catalog, errors) {
            if let Some(old) = flows.insert(flow.name.clone(), flow) {
                errors.push(DataError {
                    file: file.clone(),
                    line: 1,
                    message: format!(
                        "flow `{}` is also defined in {}",
                        old.name,
                        old.file.display()
                    ),
                });
            }
        }
    }
    flows
}

/// Step lines: the n-th "- " item under `steps:`.
fn step_lines(text: &str, count: usize) -> Vec<usize> {
    let start = line_of(text, "steps:");
    let mut lines = Vec::new();
    let mut indent: Option<usize> = None;
    for (i, l) in text.lines().enumerate().skip(start) {
        let trimmed = l.trim_start();
        if let Some(rest) = trimmed.strip_prefix("- ") {
            let ind = l.len() - trimmed.len();
            let _ = rest;
            match indent {
                None => {
                    indent = Some(ind);
                    lines.push(i + 1);
                }
                Some(x) if x == ind => lines.push(i + 1),
                _ => {}
            }
        }
    }
    lines.resize(count, start);
    lines
}

fn validate(
    spec: FlowFile,
    file: &Path,
    text: &str,
    catalog: &dyn ActionCatalog,
    errors: &mut Vec<DataError>,
) -> Option<Flow> {
    let before = errors.len();
    let mut check = Check {
        file,
        text,
        catalog,
        known: BTreeSet::new(),
        ids: BTreeMap::new(),
        errors,
    };
    if !nlu::is_intent(&spec.flow) {
        check.err(
            line_of(text, "flow:"),
            format!(
                "flow `{}` is not an intent name (a flow runs when its intent is understood)",
                spec.flow
            ),
        );
    }
    if spec.steps.is_empty() {
        check.err(
            line_of(text, "steps:"),
            "a flow needs at least one step".into(),
        );
        return None;
    }
    let lines = step_lines(text, spec.steps.len());
    check.known = known_slots(&spec, catalog);
    for (i, s) in spec.steps.iter().enumerate() {
        if let Some(id) = &s.id {
            if check.ids.insert(id.clone(), i).is_some() {
                check.err(lines[i], format!("step id `{id}` is used twice"));
            }
        }
    }
    let mut steps = Vec::new();
    for (s, &line) in spec.steps.iter().zip(&lines) {
        let Some(kind) = check.step(s, line) else {
            continue;
        };
        check.references(s, &kind, line);
        steps.push(Step {
            kind,
            spec: s.clone(),
            line,
        });
    }
    let ids = std::mem::take(&mut check.ids);
    if errors.len() > before {
        return None;
    }
    let flow = Flow {
        name: spec.flow,
        description: spec.description,
        moves_money: spec.moves_money,
        steps,
        ids,
        file: file.to_path_buf(),
    };
    for i in unreachable(&flow) {
        errors.push(DataError {
            file: file.to_path_buf(),
            line: flow.steps[i].line,
            message: "no path reaches this step".into(),
        });
    }
    (errors.len() == before).then_some(flow)
}

/// Every slot a step of the flow may fill: the NLU's, the declared ones, action outputs,
/// saved device results, and `error` (the code of the last failed device or action).
fn known_slots(spec: &FlowFile, catalog: &dyn ActionCatalog) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = NLU_SLOTS.iter().map(|s| s.to_string()).collect();
    known.extend(spec.slots.iter().cloned());
    known.insert("error".to_string());
    for s in &spec.steps {
        if let (Some(a), None) = (&s.action, &s.device) {
            known.extend(catalog.outputs(a).unwrap_or_default());
        }
        known.extend(s.save.iter().cloned());
    }
    known
}

/// The state of checking one flow file.
struct Check<'a> {
    file: &'a Path,
    text: &'a str,
    catalog: &'a dyn ActionCatalog,
    /// Slots some step may fill.
    known: BTreeSet<String>,
    /// Step id → index.
    ids: BTreeMap<String, usize>,
    errors: &'a mut Vec<DataError>,
}

impl Check<'_> {
    fn err(&mut self, line: usize, message: String) {
        self.errors.push(DataError {
            file: self.file.to_path_buf(),
            line,
            message,
        });
    }

    /// The step's kind, checked; `None` when it has not exactly one.
    fn step(&mut self, s: &StepSpec, line: usize) -> Option<Kind> {
        let other_kind = s.say.is_some()
            || s.ask.is_some()
            || s.confirm.is_some()
            || s.device.is_some()
            || s.action.is_some()
            || s.branch.is_some()
            || s.handoff.is_some()
            || s.end.is_some();
        let kinds = [
            s.say.is_some(),
            s.ask.is_some(),
            s.confirm.is_some(),
            s.device.is_some(),
            s.action.is_some() && s.device.is_none(),
            s.branch.is_some(),
            s.handoff.is_some(),
            s.goto.is_some() && !other_kind,
            s.end.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds != 1 {
            self.err(
                line,
                format!(
                    "a step needs exactly one of say, ask, confirm, device, action, branch, handoff, goto, end (found {kinds})"
                ),
            );
            return None;
        }
        if s.interruptible.is_some() && s.say.is_none() && s.ask.is_none() && s.confirm.is_none() {
            self.err(
                line,
                "`interruptible` belongs on a step that speaks (say, ask, confirm)".to_string(),
            );
        }
        Some(if let Some(t) = &s.say {
            Kind::Say(t.clone())
        } else if let Some(slot) = &s.ask {
            if !self.known.contains(slot) {
                self.err(
                    line,
                    format!("ask: unknown slot `{slot}` (declare it under `slots:`)"),
                );
            }
            if s.prompt.is_none() {
                self.err(line, format!("ask `{slot}` has no prompt"));
            }
            Kind::Ask { slot: slot.clone() }
        } else if let Some(t) = &s.confirm {
            Kind::Confirm(t.clone())
        } else if let Some(device) = &s.device {
            self.device(device, s.action.as_deref(), line)?
        } else if let Some(a) = &s.action {
            if self.catalog.outputs(a).is_none() {
                let names = self.catalog.names();
                self.err(
                    line,
                    format!("unknown action `{a}` (one of {})", names.join(", ")),
                );
            }
            Kind::Action(a.clone())
        } else if let Some(cases) = &s.branch {
            for c in cases {
                match condition_slot(&c.when) {
                    Some(slot) if !self.known.contains(slot) => self.err(
                        line,
                        format!("branch: unknown slot `{slot}` in `{}`", c.when),
                    ),
                    Some(_) => {}
                    None => self.err(line, format!("branch: cannot read condition `{}`", c.when)),
                }
            }
            Kind::Branch(cases.clone())
        } else if let Some(h) = &s.handoff {
            match parse_handoff(h) {
                Some(kind) => Kind::Handoff(kind),
                None => {
                    self.err(
                        line,
                        format!("handoff to `{h}`: use teller or remote_expert"),
                    );
                    Kind::Handoff(HandoffKind::Teller)
                }
            }
        } else if let (Some(g), false) = (&s.goto, other_kind) {
            Kind::Goto(g.clone())
        } else {
            match &s.end {
                Some(EndSpec::Say(t)) => Kind::End(Some(t.clone())),
                _ => Kind::End(None),
            }
        })
    }

    /// A device step: a device of the kiosk protocol and one of its actions.
    fn device(&mut self, device: &str, action: Option<&str>, line: usize) -> Option<Kind> {
        let devices = devices();
        if !devices.contains(&device) {
            self.err(
                line,
                format!("unknown device `{device}` (one of {})", devices.join(", ")),
            );
        }
        let Some(action) = action else {
            self.err(line, format!("device `{device}` step needs an `action`"));
            return None;
        };
        if devices.contains(&device)
            && kiosk_protocol::devices::Action::parse(device, action).is_none()
        {
            let known: Vec<&str> = kiosk_protocol::devices::Action::ALL
                .iter()
                .map(|a| a.names())
                .filter(|(d, _)| *d == device)
                .map(|(_, a)| a)
                .collect();
            self.err(
                line,
                format!(
                    "`{device}` has no action `{action}` (it can: {})",
                    known.join(", ")
                ),
            );
        }
        Some(Kind::Device {
            device: device.to_string(),
            action: action.to_string(),
        })
    }

    /// What a step refers to: slots it clears and names in templates, jump targets, and
    /// where a `goto` may stand.
    fn references(&mut self, s: &StepSpec, kind: &Kind, line: usize) {
        for c in &s.clear {
            if !self.known.contains(c) {
                self.err(line, format!("clear: unknown slot `{c}`"));
            }
        }
        if s.goto.is_some()
            && matches!(
                kind,
                Kind::Ask { .. }
                    | Kind::Confirm(_)
                    | Kind::End(_)
                    | Kind::Handoff(_)
                    | Kind::Branch(_)
            )
        {
            self.err(
                line,
                "`goto` can follow say, device and action steps only".into(),
            );
        }
        let mut targets: Vec<&String> = Vec::new();
        targets.extend(s.on_no.iter());
        targets.extend(s.on_error.iter());
        targets.extend(s.goto.iter());
        if let Some(cases) = &s.branch {
            targets.extend(cases.iter().map(|c| &c.goto));
        }
        for t in targets {
            if !self.ids.contains_key(t) {
                self.err(line, format!("jump to unknown step id `{t}`"));
            }
        }
        self.templates(s, line);
        for c in &s.choices {
            if c.value.trim().is_empty() {
                self.err(line, format!("choice `{}` has no value", c.label));
            }
        }
    }

    /// Templates name known slots; screen-only slots appear only under `show:`.
    fn templates(&mut self, s: &StepSpec, line: usize) {
        let mut texts: Vec<&str> = Vec::new();
        for t in [&s.say, &s.confirm, &s.prompt].into_iter().flatten() {
            texts.extend(t.variants());
        }
        if let Some(EndSpec::Say(t)) = &s.end {
            texts.extend(t.variants());
        }
        for t in &texts {
            for slot in template_slots(t) {
                if SCREEN_ONLY_SLOTS.contains(&slot) {
                    let at = line_of_after(self.text, &format!("{{{slot}}}"), line);
                    self.err(
                        at,
                        format!("`{{{slot}}}` may only appear under `show:` (screen only, never spoken)"),
                    );
                }
            }
        }
        texts.extend(s.args.values().map(String::as_str));
        texts.extend(s.show.values().map(String::as_str));
        texts.extend(s.article.as_deref());
        texts.extend(
            s.choices
                .iter()
                .flat_map(|c| [c.label.as_str(), c.value.as_str()]),
        );
        for t in texts {
            for slot in template_slots(t) {
                if !self.known.contains(slot) {
                    let at = line_of_after(self.text, &format!("{{{slot}}}"), line);
                    self.err(at, format!("template names unknown slot `{{{slot}}}`"));
                }
            }
        }
    }
}

/// `teller` or `remote_expert`.
pub fn parse_handoff(s: &str) -> Option<HandoffKind> {
    match s {
        "teller" => Some(HandoffKind::Teller),
        "remote_expert" => Some(HandoffKind::RemoteExpert),
        _ => None,
    }
}

const OPERATORS: [&str; 6] = ["==", "!=", ">=", "<=", ">", "<"];

fn split_condition(c: &str) -> Option<(&str, &'static str, &str)> {
    OPERATORS
        .iter()
        .find_map(|op| c.split_once(op).map(|(l, r)| (l.trim(), *op, r.trim())))
}

/// The slot a condition reads.
pub fn condition_slot(cond: &str) -> Option<&str> {
    let c = cond.trim();
    let slot = if let Some((l, _, _)) = split_condition(c) {
        l
    } else {
        c.strip_prefix('!').unwrap_or(c).trim()
    };
    (!slot.is_empty()
        && slot
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
    .then_some(slot)
}

/// Evaluates a condition over slots.
pub fn condition_holds(cond: &str, slots: &BTreeMap<String, String>) -> bool {
    let c = cond.trim();
    if let Some((l, op, r)) = split_condition(c) {
        let value = slots.get(l).map(String::as_str);
        let num = |s: &str| s.parse::<f64>().ok();
        return match op {
            "==" => value == Some(r),
            "!=" => value != Some(r),
            _ => match (value.and_then(num), num(r)) {
                (Some(a), Some(b)) => match op {
                    ">=" => a >= b,
                    "<=" => a <= b,
                    ">" => a > b,
                    _ => a < b,
                },
                _ => false,
            },
        };
    }
    match c.strip_prefix('!') {
        Some(s) => !slots.contains_key(s.trim()),
        None => slots.contains_key(c),
    }
}

/// The `{slot}` names in a template.
pub fn template_slots(t: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    out
}

/// Steps no path from the first step reaches.
fn unreachable(flow: &Flow) -> Vec<usize> {
    let n = flow.steps.len();
    let mut seen = vec![false; n];
    let mut todo = vec![0usize];
    while let Some(i) = todo.pop() {
        if i >= n || seen[i] {
            continue;
        }
        seen[i] = true;
        let s = &flow.steps[i];
        let mut next: Vec<usize> = Vec::new();
        let falls_through = s.spec.goto.is_none()
            && !matches!(s.kind, Kind::End(_) | Kind::Handoff(_) | Kind::Goto(_));
        if falls_through {
            next.push(i + 1);
        }
        for t in [&s.spec.on_no, &s.spec.on_error, &s.spec.goto]
            .into_iter()
            .flatten()
        {
            next.push(flow.target(t));
        }
        if let Kind::Branch(cases) = &s.kind {
            next.extend(cases.iter().map(|c| flow.target(&c.goto)));
        }
        todo.extend(next);
    }
    (0..n).filter(|i| !seen[*i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> (BTreeMap<String, Flow>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("flows")).unwrap();
        std::fs::write(dir.path().join("flows/f.yaml"), yaml).unwrap();
        let mut errors = Vec::new();
        let flows = load_flows(
            dir.path(),
            &crate::actions::Registry::standard(),
            &mut errors,
        );
        (
            flows,
            errors
                .iter()
                .map(|e| e.to_string().rsplit("f.yaml").next().unwrap().to_string())
                .collect(),
        )
    }

    #[test]
    fn a_good_flow_loads() {
        let (flows, errors) = load(
            "flow: queue.take_number\nsteps:\n  - ask: service\n    prompt: 办什么业务？\n  - action: queue.take\n    on_error: failed\n  - say: 您的号码是{ticket}\n  - end: true\n  - id: failed\n    handoff: teller\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let f = &flows["queue.take_number"];
        assert_eq!(f.steps.len(), 5);
        assert_eq!(f.target("failed"), 4);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let (_, errors) = load(
            "flow: queue.take_number\nsteps:\n  - ask: colour\n    prompt: 什么颜色？\n  - ask: date\n  - action: teleport\n  - say: 好的{nonsense}\n  - say: 余额{balance}\n",
        );
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has(":3: ask: unknown slot `colour`"), "{errors:?}");
        assert!(has(":5: ask `date` has no prompt"), "{errors:?}");
        assert!(has(":6: unknown action `teleport`"), "{errors:?}");
        assert!(
            has(":7: template names unknown slot `{nonsense}`"),
            "{errors:?}"
        );
        assert!(
            has(":8: `{balance}` may only appear under `show:`"),
            "{errors:?}"
        );
        let (_, errors) = load("flow: queue.take_number\nsteps:\n  - dance: true\n");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(":3: steps[0]: unknown field `dance`")),
            "{errors:?}"
        );
    }

    #[test]
    fn jumps_and_unreachable_steps_are_checked() {
        let (_, errors) =
            load("flow: queue.take_number\nsteps:\n  - say: 你好\n  - goto: nowhere\n");
        assert!(
            errors
                .iter()
                .any(|e| e.contains(":4: jump to unknown step id `nowhere`")),
            "{errors:?}"
        );
        let (_, errors) = load(
            "flow: queue.take_number\nsteps:\n  - say: 你好\n  - end: true\n  - say: 永远到不了\n",
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains(":5: no path reaches this step")),
            "{errors:?}"
        );
    }

    #[test]
    fn conditions() {
        let mut s = BTreeMap::new();
        s.insert("card_status".to_string(), "frozen".to_string());
        assert!(condition_holds("card_status == frozen", &s));
        assert!(!condition_holds("card_status != frozen", &s));
        assert!(condition_holds("card_status", &s));
        assert!(condition_holds("!amount", &s));
        assert_eq!(condition_slot("amount == 5"), Some("amount"));
        assert_eq!(condition_slot("!amount"), Some("amount"));
        assert_eq!(condition_slot("a b"), None);
        s.insert("amount".to_string(), "50000.5".to_string());
        assert!(condition_holds("amount > 50000", &s));
        assert!(!condition_holds("amount <= 50000", &s));
        assert!(!condition_holds("missing > 1", &s));
        assert_eq!(template_slots("{a}和{b}"), vec!["a", "b"]);
    }
}
