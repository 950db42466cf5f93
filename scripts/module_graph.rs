//! A crate's module graph from its sources, and the layer check each crate's `tests/layers.rs`
//! runs over it (included there with `#[path]`: a helper crate would cost a build for 150
//! lines). A node is a top-level module (`src/x.rs` or `src/x/`); an edge is a `crate::x` path
//! anywhere in its code (a `use`, a brace group `crate::{x, y::z}`, or a path in an
//! expression; `super::x` in a top-level module's own file), comments and `#[cfg(test)] mod tests` blocks left out: tests may reach up.
//!
//! The rule: a module imports only modules of its own layer or a lower one, and the graph has
//! no cycle (two modules of one layer may not import each other, directly or around).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it names.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules under `src` and their `crate::` edges. `lib.rs` and `main.rs` are the
/// crate root, not a node; files named `tests.rs` or `*_tests.rs` are test modules and left out.
pub fn of(src: &Path) -> Graph {
    let mut files = Vec::new();
    walk(src, &mut files);
    files.retain(|f| !is_test_file(f));
    let mut graph = Graph::new();
    for file in &files {
        if let Some(m) = top_module(src, file) {
            graph.entry(m).or_default();
        }
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for file in &files {
        let Some(m) = top_module(src, file) else {
            continue;
        };
        let code = std::fs::read_to_string(file).expect("readable source");
        let code = without_tests(&without_comments(&code));
        // In a top-level module's own file `super` is the crate root; deeper, it is a module of
        // the same top-level module (no edge).
        let rel = file.strip_prefix(src).expect("under src");
        let top_file = rel.components().count() == 1
            || rel.ends_with("mod.rs") && rel.components().count() == 2;
        let code = if top_file {
            code.replace("super::", "crate::")
        } else {
            code
        };
        for target in crate_paths(&code) {
            if target != m && known.contains(&target) {
                graph.get_mut(&m).expect("node").insert(target);
            }
        }
    }
    graph
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `tests.rs` and `*_tests.rs`: a module's tests, in a file of their own.
fn is_test_file(file: &Path) -> bool {
    file.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s == "tests" || s.ends_with("_tests"))
}

fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    let root = matches!(name, "lib" | "main") && rel.components().count() == 1;
    (!root).then(|| name.to_string())
}

/// The code without `//` and `/* */` comments (doc comments name modules they do not import).
/// String literals are kept as they are: a `"crate::x"` in one would count as an edge, which
/// errs on the strict side.
fn without_comments(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The code before its `#[cfg(test)] mod tests` block (by convention the file's last item).
fn without_tests(code: &str) -> String {
    let mut lines = code.lines().peekable();
    let mut out = String::new();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The first segment of every `crate::` path: `crate::a::b` gives `a`, `crate::{a, b::{c}}`
/// gives `a` and `b`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        let rest_trimmed = rest.trim_start();
        if let Some(group) = rest_trimmed.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        if !ident.is_empty() {
                            found.push(std::mem::take(&mut ident));
                        }
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if item_start && depth == 1 {
                    if c.is_alphanumeric() || c == '_' {
                        ident.push(c);
                    } else if !ident.is_empty() {
                        found.push(std::mem::take(&mut ident));
                        item_start = false;
                    }
                }
            }
            if !ident.is_empty() {
                found.push(ident);
            }
        } else {
            let ident: String = rest_trimmed
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                found.push(ident);
            }
        }
    }
    found
}

/// Every violation of `layers` (lowest first) in `graph`: a module no layer lists, a listed
/// module that does not exist, an import of a higher layer, and each cycle.
pub fn violations(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut layer_of = BTreeMap::new();
    for (i, layer) in layers.iter().enumerate() {
        for m in *layer {
            if layer_of.insert(m.to_string(), i).is_some() {
                problems.push(format!("`{m}` is listed in two layers"));
            }
        }
    }
    for m in graph.keys() {
        if !layer_of.contains_key(m) {
            problems.push(format!(
                "`{m}` is in no layer: add it to the layer it belongs to"
            ));
        }
    }
    for m in layer_of.keys() {
        if !graph.contains_key(m) {
            problems.push(format!("`{m}` is listed but there is no such module"));
        }
    }
    for (m, targets) in graph {
        let Some(&from) = layer_of.get(m) else {
            continue;
        };
        for t in targets {
            if let Some(&to) = layer_of.get(t)
                && to > from
            {
                problems.push(format!(
                    "`{m}` (layer {from}) imports `{t}` (layer {to}): layers import only downward"
                ));
            }
        }
    }
    problems.extend(
        cycles(graph)
            .into_iter()
            .map(|c| format!("module cycle: {}", c.join(" → "))),
    );
    problems
}

/// One cycle through each strongly connected set of modules, found by depth-first search.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        marks.insert(m.to_string(), Mark::Open);
        stack.push(m.to_string());
        for t in graph.get(m).into_iter().flatten() {
            match marks.get(t.as_str()) {
                Some(Mark::Open) => {
                    let start = stack.iter().position(|s| s == t).expect("on the stack");
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(t.clone());
                    found.push(cycle);
                }
                Some(Mark::Done) => {}
                None => visit(t, graph, marks, stack, found),
            }
        }
        stack.pop();
        marks.insert(m.to_string(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for m in graph.keys() {
        if !marks.contains_key(m.as_str()) {
            visit(m, graph, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// The check a crate's `tests/layers.rs` runs: the modules under `<manifest_dir>/src` (at least
/// `min_modules` of them, so a wrong path cannot pass) obey `layers`.
pub fn check(manifest_dir: &str, layers: &[&[&str]], min_modules: usize) {
    let graph = of(&Path::new(manifest_dir).join("src"));
    assert!(
        graph.len() >= min_modules,
        "the sources were not found: {graph:?}"
    );
    let problems = violations(&graph, layers);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The checker on a graph made up for the purpose: what it must find, it finds.
pub fn self_test() {
    let code = "use crate::a::X;\nuse crate::{b, c::{d, e}};\nuse crate::{i,j};\n// crate::f\nlet x = crate::g::h();\n\
                pylon_crate::z;\n#[cfg(test)]\nmod tests { use crate::t; }\n";
    let paths = crate_paths(&without_tests(&without_comments(code)));
    assert_eq!(paths, ["a", "b", "c", "i", "j", "g"]);
    let graph: Graph = [
        ("low", vec![]),
        ("mid", vec!["low", "top"]),
        ("top", vec!["mid"]),
        ("loose", vec![]),
    ]
    .into_iter()
    .map(|(m, ts)| (m.to_string(), ts.into_iter().map(str::to_string).collect()))
    .collect();
    let problems = violations(&graph, &[&["low"], &["mid"], &["top", "gone"]]);
    let expect = [
        "`loose` is in no layer",
        "`gone` is listed but there is no such module",
        "`mid` (layer 1) imports `top` (layer 2)",
        "module cycle: mid → top → mid",
    ];
    for e in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(e)),
            "{e:?} not found in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}
