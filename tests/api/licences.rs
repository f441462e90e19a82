//! The licence and bans policy (`deploy/policy/licences.toml`) over every package of
//! `Cargo.lock`, read with `cargo metadata --locked --offline` (only cargo, no network, no
//! extra tool: docs/licences.md says why not cargo-deny). Every package's SPDX `license`
//! expression must be satisfied by the allow-list; packages without one must be listed with
//! their licence file; banned crates must be absent (bans can be written down disabled);
//! crates in several versions are reported, not failed. The checker itself is tested on
//! small synthetic metadata, so a planted bad licence is shown to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

const POLICY: &str = "deploy/policy/licences.toml";

/// The policy file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    allow: Vec<String>,
    #[serde(default)]
    forbid: Vec<String>,
    #[serde(default)]
    notes: BTreeMap<String, String>,
    #[serde(default)]
    unlicensed: Vec<Unlicensed>,
    #[serde(default)]
    bans: Vec<Ban>,
}

/// A package without a `license` field, with the licence read from its licence file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Unlicensed {
    name: String,
    licence_file: String,
    expression: String,
}

/// A crate that must not be in the lock file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ban {
    name: String,
    reason: String,
    enabled: bool,
}

/// What the check found.
#[derive(Debug, Default)]
struct Report {
    /// Each a line naming the package and why: these fail the test.
    problems: Vec<String>,
    /// Crates present in several versions (name → versions): printed only.
    duplicates: BTreeMap<String, BTreeSet<String>>,
    /// Disabled bans whose crate is present (printed, so enabling them is not forgotten).
    pending_bans: Vec<String>,
}

fn load_policy(path: &Path) -> Policy {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let policy: Policy = toml::from_str(&text).unwrap_or_else(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].lines().count().max(1))
            .unwrap_or(1);
        panic!("{}:{line}: {}", path.display(), e.message())
    });
    let at = |needle: &str| {
        format!(
            "{}:{}",
            path.display(),
            concierge::datafile::line_of(&text, needle)
        )
    };
    for id in &policy.forbid {
        assert!(
            !policy.allow.contains(id),
            "{}: {id} is both allowed and forbidden",
            at(id)
        );
    }
    for id in policy.notes.keys() {
        assert!(
            policy.allow.contains(id),
            "{}: a note on {id}, which is not allowed",
            at(id)
        );
    }
    for u in &policy.unlicensed {
        assert!(
            !u.licence_file.trim().is_empty(),
            "{}: [[unlicensed]] {} needs its licence_file",
            at(&u.name),
            u.name
        );
    }
    policy
}

/// An SPDX licence expression: `A OR B`, `A AND B`, `A WITH exception`, parentheses; the
/// legacy `A/B` is OR.
#[derive(Debug, PartialEq)]
enum Expr {
    Id(String),
    With(String, String),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

fn parse_spdx(text: &str) -> Result<Expr, String> {
    let spaced = text
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let e = parse_or(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return Err(format!("unexpected `{}` in `{text}`", tokens[pos]));
    }
    Ok(e)
}

fn parse_or(t: &[&str], pos: &mut usize) -> Result<Expr, String> {
    let mut sides = vec![parse_and(t, pos)?];
    while t.get(*pos).is_some_and(|w| w.eq_ignore_ascii_case("OR")) {
        *pos += 1;
        sides.push(parse_and(t, pos)?);
    }
    Ok(if sides.len() == 1 {
        sides.pop().unwrap()
    } else {
        Expr::Or(sides)
    })
}

fn parse_and(t: &[&str], pos: &mut usize) -> Result<Expr, String> {
    let mut sides = vec![parse_with(t, pos)?];
    while t.get(*pos).is_some_and(|w| w.eq_ignore_ascii_case("AND")) {
        *pos += 1;
        sides.push(parse_with(t, pos)?);
    }
    Ok(if sides.len() == 1 {
        sides.pop().unwrap()
    } else {
        Expr::And(sides)
    })
}

fn parse_with(t: &[&str], pos: &mut usize) -> Result<Expr, String> {
    let first = match t.get(*pos) {
        None => return Err("the expression ends too early".into()),
        Some(&"(") => {
            *pos += 1;
            let e = parse_or(t, pos)?;
            if t.get(*pos) != Some(&")") {
                return Err("a `(` is not closed".into());
            }
            *pos += 1;
            return Ok(e);
        }
        Some(w) if [")", "AND", "OR", "WITH"].contains(&w.to_ascii_uppercase().as_str()) => {
            return Err(format!("a licence id was expected, not `{w}`"))
        }
        Some(w) => {
            *pos += 1;
            w.to_string()
        }
    };
    if t.get(*pos).is_some_and(|w| w.eq_ignore_ascii_case("WITH")) {
        *pos += 1;
        let exception = t.get(*pos).ok_or("WITH needs an exception id")?.to_string();
        *pos += 1;
        return Ok(Expr::With(first, exception));
    }
    Ok(Expr::Id(first))
}

/// Whether the expression is satisfied by the allow-list.
fn allowed(e: &Expr, allow: &BTreeSet<&str>) -> bool {
    match e {
        Expr::Id(id) => allow.contains(id.as_str()),
        Expr::With(id, exc) => {
            allow.contains(id.as_str()) || allow.contains(format!("{id} WITH {exc}").as_str())
        }
        Expr::And(all) => all.iter().all(|e| allowed(e, allow)),
        Expr::Or(any) => any.iter().any(|e| allowed(e, allow)),
    }
}

/// The ids of an expression the policy forbids by name (to say why it failed).
fn forbidden_ids<'a>(e: &'a Expr, forbid: &BTreeSet<&str>, out: &mut Vec<&'a str>) {
    match e {
        Expr::Id(id) | Expr::With(id, _) => {
            if forbid.contains(id.as_str()) {
                out.push(id);
            }
        }
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| forbidden_ids(e, forbid, out)),
    }
}

/// Checks `cargo metadata` JSON against the policy.
fn check(metadata: &Value, policy: &Policy) -> Report {
    let allow: BTreeSet<&str> = policy.allow.iter().map(String::as_str).collect();
    let forbid: BTreeSet<&str> = policy.forbid.iter().map(String::as_str).collect();
    let mut report = Report::default();
    let mut versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let packages = metadata["packages"]
        .as_array()
        .expect("cargo metadata has no `packages`");
    for p in packages {
        let name = p["name"].as_str().unwrap_or("?");
        let version = p["version"].as_str().unwrap_or("?");
        versions
            .entry(name.to_string())
            .or_default()
            .insert(version.to_string());
        let expression = match p["license"].as_str().filter(|l| !l.trim().is_empty()) {
            Some(l) => l.to_string(),
            None => match policy.unlicensed.iter().find(|u| u.name == name) {
                Some(u) => u.expression.clone(),
                None => {
                    report.problems.push(format!(
                        "{name} {version}: no `license` field; list it under [[unlicensed]] in \
                         {POLICY} with its licence file ({}) and the licence it grants",
                        p["license_file"].as_str().unwrap_or("none declared")
                    ));
                    continue;
                }
            },
        };
        match parse_spdx(&expression) {
            Err(e) => report.problems.push(format!(
                "{name} {version}: licence `{expression}` is not an SPDX expression: {e}"
            )),
            Ok(e) if !allowed(&e, &allow) => {
                let mut bad = Vec::new();
                forbidden_ids(&e, &forbid, &mut bad);
                let why = if bad.is_empty() {
                    format!("not on the allow-list of {POLICY}")
                } else {
                    format!("forbidden: {}", bad.join(", "))
                };
                report
                    .problems
                    .push(format!("{name} {version}: licence `{expression}` ({why})"));
            }
            Ok(_) => {}
        }
    }
    for ban in &policy.bans {
        if let Some(vs) = versions.get(&ban.name) {
            let line = format!(
                "{} {}: banned ({})",
                ban.name,
                vs.iter().cloned().collect::<Vec<_>>().join(", "),
                ban.reason
            );
            if ban.enabled {
                report.problems.push(line);
            } else {
                report.pending_bans.push(line);
            }
        }
    }
    report.duplicates = versions.into_iter().filter(|(_, v)| v.len() > 1).collect();
    report
}

/// `cargo metadata --locked` of the workspace: offline first (every package of every
/// platform is in the local cache once `cargo fetch` has run), else letting cargo download
/// the manifests a build for this platform did not need (a fresh CI machine).
fn cargo_metadata(root: &Path) -> Vec<u8> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |offline: bool| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--locked"]);
        if offline {
            cmd.arg("--offline");
        }
        cmd.current_dir(root).output().expect("run cargo metadata")
    };
    let offline = run(true);
    if offline.status.success() {
        return offline.stdout;
    }
    let online = run(false);
    assert!(
        online.status.success(),
        "cargo metadata --locked failed offline:\n{}\nand online:\n{}",
        String::from_utf8_lossy(&offline.stderr),
        String::from_utf8_lossy(&online.stderr)
    );
    online.stdout
}

#[test]
fn every_dependency_has_an_allowed_licence_and_no_banned_crate_is_locked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = load_policy(&root.join(POLICY));
    let metadata_json = cargo_metadata(root);
    let metadata: Value = serde_json::from_slice(&metadata_json).expect("cargo metadata JSON");
    let n = metadata["packages"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n > 100, "only {n} packages in cargo metadata");
    let report = check(&metadata, &policy);
    for (name, versions) in &report.duplicates {
        eprintln!(
            "licences: warning: {name} in {} versions: {}",
            versions.len(),
            versions.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for line in &report.pending_bans {
        eprintln!("licences: pending ban (enabled = false): {line}");
    }
    assert!(
        report.problems.is_empty(),
        "{} package(s) break {POLICY}:\n{}",
        report.problems.len(),
        report.problems.join("\n")
    );
}

#[cfg(test)]
mod checker {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        toml::from_str(
            r#"
            allow = ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception", "Unicode-3.0"]
            forbid = ["GPL-3.0-only", "AGPL-3.0-only"]
            [[unlicensed]]
            name = "ours"
            licence_file = "LICENSE"
            expression = "MIT"
            [[bans]]
            name = "openssl-sys"
            reason = "rustls only"
            enabled = true
            [[bans]]
            name = "serde_yaml"
            reason = "unmaintained"
            enabled = false
            "#,
        )
        .unwrap()
    }

    fn metadata(packages: &[(&str, &str, Option<&str>)]) -> Value {
        json!({"packages": packages.iter().map(|(n, v, l)| json!({
            "name": n, "version": v, "license": l, "license_file": null
        })).collect::<Vec<_>>()})
    }

    fn problems(packages: &[(&str, &str, Option<&str>)]) -> Vec<String> {
        check(&metadata(packages), &policy()).problems
    }

    #[test]
    fn permissive_licences_pass() {
        assert_eq!(
            problems(&[
                ("a", "1.0.0", Some("MIT")),
                ("b", "1.0.0", Some("MIT/Apache-2.0")),
                ("c", "1.0.0", Some("(MIT OR Apache-2.0) AND Unicode-3.0")),
                ("d", "1.0.0", Some("Apache-2.0 WITH LLVM-exception OR MIT")),
                ("ours", "0.1.0", None),
            ]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_planted_gpl_licence_fails_and_says_it_is_forbidden() {
        let p = problems(&[
            ("good", "1.0.0", Some("MIT")),
            ("bad", "2.3.4", Some("GPL-3.0-only")),
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("bad 2.3.4:"), "{p:?}");
        assert!(p[0].contains("forbidden: GPL-3.0-only"), "{p:?}");
    }

    #[test]
    fn or_needs_one_allowed_side_and_and_needs_all() {
        assert!(problems(&[("x", "1.0.0", Some("GPL-3.0-only OR MIT"))]).is_empty());
        let p = problems(&[("y", "1.0.0", Some("MIT AND AGPL-3.0-only"))]);
        assert_eq!(p.len(), 1, "{p:?}");
        let p = problems(&[("z", "1.0.0", Some("(MIT OR Apache-2.0) AND SSPL-1.0"))]);
        assert!(p[0].contains("not on the allow-list"), "{p:?}");
    }

    #[test]
    fn a_package_without_a_licence_must_be_listed() {
        let p = problems(&[("theirs", "1.0.0", None)]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("[[unlicensed]]"), "{p:?}");
    }

    #[test]
    fn malformed_expressions_are_reported() {
        for bad in ["MIT OR", "(MIT", "AND MIT", "MIT Apache-2.0"] {
            let p = problems(&[("m", "1.0.0", Some(bad))]);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].contains("not an SPDX expression"), "{bad}: {p:?}");
        }
    }

    #[test]
    fn enabled_bans_fail_disabled_bans_are_pending_and_duplicates_are_reported() {
        let r = check(
            &metadata(&[
                ("openssl-sys", "0.9.0", Some("MIT")),
                ("serde_yaml", "0.9.34", Some("MIT")),
                ("syn", "1.0.109", Some("MIT")),
                ("syn", "2.0.0", Some("MIT")),
            ]),
            &policy(),
        );
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert!(
            r.problems[0].starts_with("openssl-sys 0.9.0: banned"),
            "{r:?}"
        );
        assert_eq!(r.pending_bans.len(), 1, "{r:?}");
        assert!(r.pending_bans[0].starts_with("serde_yaml"), "{r:?}");
        assert_eq!(r.duplicates.keys().collect::<Vec<_>>(), ["syn"]);
    }

    #[test]
    fn the_policy_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let p = load_policy(&root.join(POLICY));
        assert!(p.allow.iter().any(|l| l == "MIT"));
        assert!(p.bans.iter().any(|b| b.name == "serde_yaml"));
    }
}
