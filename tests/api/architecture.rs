//! The module graph of `src/` has no import cycles: between the top-level modules (the
//! layers of ARCHITECTURE.md), and between the sibling submodules of each top-level module.
//! Edges are read from every `crate::…` and `super::…` path in production code (comments,
//! strings and `#[cfg(test)]` modules are skipped); a module's edge to its own parent is
//! not counted, since a parent re-exporting its children is the ordinary Rust layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path, `[]` for the crate root.
type ModPath = Vec<String>;

/// Every `.rs` file under `dir` with its module path.
fn modules(dir: &Path) -> Vec<(ModPath, String)> {
    fn walk(dir: &Path, prefix: &[String], out: &mut Vec<(ModPath, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("src is readable")
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut p = prefix.to_vec();
                if !matches!(stem, "mod" | "lib" | "main") {
                    p.push(stem.to_string());
                }
                if stem == "main" && prefix.is_empty() {
                    continue; // the binary, not a module of the library
                }
                out.push((p, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &[], &mut out);
    out
}

/// The source with comments, string and char literals blanked and `#[cfg(test)]` items
/// removed, so only code that production compiles remains.
fn code_only(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_char(prev(&out)) {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    strip_test_items(&out)
}

fn prev(s: &str) -> char {
    s.chars().last().unwrap_or(' ')
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Removes each item that follows `#[cfg(test)]` (a `mod tests { … }` or a function).
fn strip_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at the matching brace of its first `{`, or at `;` if none comes first.
        let open = after.find('{');
        let semi = after.find(';');
        let end = match (open, semi) {
            (Some(o), Some(s)) if s < o => s + 1,
            (Some(o), _) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (k, ch) in after[o..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = o + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every path written from `crate::` or `super::`, expanded through `{a, b::c}` groups and
/// made absolute from `module`.
fn paths(module: &[String], code: &str) -> Vec<ModPath> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let starts = (t == "crate" || t == "super")
            && tokens.get(i + 1).map(String::as_str) == Some("::")
            && (i == 0 || tokens[i - 1] != "::");
        if !starts {
            i += 1;
            continue;
        }
        let mut base: ModPath = if t == "crate" {
            Vec::new()
        } else {
            // `super` of src/a/b.rs is `a`; of src/a/mod.rs it is the crate root.
            let mut b = module.to_vec();
            b.pop();
            b
        };
        let mut j = i + 2;
        // Further `super::` steps.
        while tokens.get(j).map(String::as_str) == Some("super")
            && tokens.get(j + 1).map(String::as_str) == Some("::")
        {
            base.pop();
            j += 2;
        }
        j = expand(&tokens, j, &base, &mut out);
        i = j.max(i + 1);
    }
    out
}

/// Reads `a::b::{c, d::e}` from `tokens[j..]` below `base`; returns the index after it.
fn expand(tokens: &[String], mut j: usize, base: &ModPath, out: &mut Vec<ModPath>) -> usize {
    let mut path = base.clone();
    loop {
        match tokens.get(j).map(String::as_str) {
            Some("{") => {
                j += 1;
                loop {
                    match tokens.get(j).map(String::as_str) {
                        Some("}") => return j + 1,
                        Some(",") => j += 1,
                        None => return j,
                        _ => j = expand(tokens, j, &path, out),
                    }
                }
            }
            Some(t)
                if t.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_') =>
            {
                path.push(t.to_string());
                j += 1;
                if tokens.get(j).map(String::as_str) == Some("::") {
                    j += 1;
                    continue;
                }
                out.push(path);
                // Skip an `as name` rename.
                if tokens.get(j).map(String::as_str) == Some("as") {
                    j += 2;
                }
                return j;
            }
            Some("*") => {
                out.push(path);
                return j + 1;
            }
            _ => {
                out.push(path);
                return j;
            }
        }
    }
}

fn tokenize(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if ident_char(c) {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            if c == ':' && chars.get(i + 1) == Some(&':') {
                tokens.push("::".into());
                i += 1;
            } else if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
        i += 1;
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
}

/// Module → the modules it uses, at file granularity.
fn edges(files: &[(ModPath, String)]) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let known: BTreeSet<ModPath> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (module, src) in files {
        for path in paths(module, &code_only(src)) {
            // The longest prefix that is a module (the rest names an item inside it).
            let target = (0..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| known.contains(p));
            if let Some(target) = target {
                if &target != module {
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    graph
}

/// The graph between the units `unit` maps modules to (`None`: not counted).
fn condensed(
    graph: &BTreeMap<ModPath, BTreeSet<ModPath>>,
    unit: impl Fn(&ModPath) -> Option<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in graph {
        let Some(a) = unit(from) else { continue };
        for to in tos {
            if let Some(b) = unit(to) {
                if a != b {
                    out.entry(a.clone()).or_default().insert(b);
                }
            }
        }
    }
    out
}

/// One cycle of the graph, if it has any (as `a → b → … → a`).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Every cycle found, one per layer: the top-level modules, then the children of each.
fn cycles(files: &[(ModPath, String)]) -> Vec<String> {
    let graph = edges(files);
    let mut found = Vec::new();
    let top = condensed(&graph, |m| m.first().cloned());
    if let Some(c) = find_cycle(&top) {
        found.push(format!("between top-level modules: {}", c.join(" → ")));
    }
    let parents: BTreeSet<String> = files
        .iter()
        .filter(|(m, _)| m.len() >= 2)
        .map(|(m, _)| m[0].clone())
        .collect();
    for parent in parents {
        let inner = condensed(&graph, |m| {
            (m.len() >= 2 && m[0] == parent).then(|| m[..2].join("::"))
        });
        if let Some(c) = find_cycle(&inner) {
            found.push(format!("inside `{parent}`: {}", c.join(" → ")));
        }
    }
    found
}

#[test]
fn the_modules_of_src_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    assert!(
        files.len() > 50,
        "found the sources ({} files)",
        files.len()
    );
    let found = cycles(&files);
    assert!(
        found.is_empty(),
        "import cycles in src/ (see ARCHITECTURE.md for the layers):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_and_reads_paths_as_rust_does() {
    let file = |m: &str, src: &str| {
        let path: ModPath = if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(String::from).collect()
        };
        (path, src.to_string())
    };
    // a → b through a grouped import, b → a through a path in an expression.
    let files = vec![
        file("", "pub mod a; pub mod b;"),
        file("a", "use crate::{b::{self, Thing}, x};"),
        file("b", "fn f() { crate::a::go(); }"),
    ];
    assert_eq!(
        cycles(&files),
        vec!["between top-level modules: a → b → a".to_string()]
    );
    // Comments, strings and test modules do not count.
    let files = vec![
        file("", "pub mod a; pub mod b;"),
        file("a", "use crate::b::Thing;"),
        file(
            "b",
            "// crate::a::x\nconst S: &str = \"crate::a::y\";\nfn f(c: char) -> bool { c == '\"' }\n#[cfg(test)]\nmod tests { use crate::a::go; }",
        ),
    ];
    assert!(cycles(&files).is_empty());
    // Sibling submodules, through `super::`.
    let files = vec![
        file("d", "pub mod data; pub mod flow;"),
        file("d::data", "use super::flow::Flow;"),
        file("d::flow", "use super::data::Data;"),
    ];
    assert_eq!(
        cycles(&files),
        vec!["inside `d`: d::data → d::flow → d::data".to_string()]
    );
}
