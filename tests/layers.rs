//! The direction of dependency, held: every `crate::` path in the library's code (comments and
//! unit tests aside) may name only its own layer or a lower one, and no files of two different
//! modules import each other in a circle. `docs/architecture.md` draws the layers:
//!
//! model (chat, error, protocol, ...) ← wire ← provider ← policy ← router ← {otel, sim, drill, serve}
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and its layer; a module may name modules of its layer or below.
const LAYERS: &[(&str, u8)] = &[
    // the data model and what everything shares
    ("capability", 0),
    ("chat", 0),
    ("cost", 0),
    ("duration", 0),
    ("embed", 0),
    ("error", 0),
    ("profile", 0),
    ("protocol", 0),
    ("rate_limit", 0),
    ("secret", 0),
    ("stable_hash", 0),
    ("stats", 0),
    ("status_page", 0),
    ("sync", 0),
    ("tokens", 0),
    // each wire, both directions
    ("wire", 1),
    // the adapters
    ("provider", 2),
    ("policy", 3),
    ("router", 4),
    // the router's consumers
    ("otel", 5),
    ("sim", 5),
    ("drill", 5),
    ("serve", 5),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The library's files (the binary's `main.rs` and `cli/` use the crate from outside).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "cli") {
                files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("main.rs") && !path.ends_with("lib.rs")
        {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its comments and its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().map(|l| l.find("//").map_or(l, |i| &l[..i])).collect::<Vec<_>>().join("\n")
}

/// The `crate::a::b::...` paths a piece of code names, as their module segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`, `switchyard_crate::` and the like
        }
        let mut segments = Vec::new();
        let mut tail = rest;
        loop {
            let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            let segment = &tail[..end];
            if segment.is_empty() || !segment.starts_with(|c: char| c.is_ascii_lowercase()) {
                break;
            }
            segments.push(segment.to_owned());
            tail = &tail[end..];
            match tail.strip_prefix("::") {
                Some(t) => tail = t,
                None => break,
            }
        }
        if !segments.is_empty() {
            out.push(segments);
        }
    }
    out
}

/// The file a path names: the deepest module of it that is a file.
fn resolve(segments: &[String]) -> Option<PathBuf> {
    for n in (1..=segments.len()).rev() {
        let base = segments[..n].iter().fold(src(), |p, s| p.join(s));
        for candidate in [base.with_extension("rs"), base.join("mod.rs")] {
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Every file and the files it names.
fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut all = Vec::new();
    files(&src(), &mut all);
    all.into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let names = paths(&code(&text)).iter().filter_map(|p| resolve(p)).filter(|t| *t != file).collect();
            (file, names)
        })
        .collect()
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn short(p: &Path) -> String {
    p.strip_prefix(src().parent().unwrap()).unwrap().display().to_string()
}

#[test]
fn every_module_has_a_layer() {
    let unknown: BTreeSet<String> = graph().keys().map(|f| module_of(f)).filter(|m| layer(m).is_none()).collect();
    assert!(unknown.is_empty(), "modules without a layer in tests/layers.rs: {unknown:?}");
}

#[test]
fn no_module_names_a_module_of_a_higher_layer() {
    let mut wrong = Vec::new();
    for (file, names) in graph() {
        let (from, to_files) = (module_of(&file), names);
        let Some(own) = layer(&from) else { continue };
        for target in to_files {
            let to = module_of(&target);
            if layer(&to).is_some_and(|l| l > own) {
                wrong.push(format!("{} ({from}, layer {own}) names {} ({to})", short(&file), short(&target)));
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies that run up:\n{}", wrong.join("\n"));
}

#[test]
fn no_file_names_an_item_through_the_crate_root() {
    // `crate::Protocol` hides which layer it names: the root's re-exports are for users
    let mut wrong = Vec::new();
    for file in graph().keys() {
        let code = code(&std::fs::read_to_string(file).unwrap());
        for (i, _) in code.match_indices("crate::") {
            let before = code[..i].chars().next_back();
            let after = code[i + "crate::".len()..].chars().next();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
                && after.is_some_and(|c| c.is_ascii_uppercase() || c == '{')
            {
                wrong.push(format!("{}: {}", short(file), code[i..].lines().next().unwrap_or("")));
            }
        }
    }
    assert!(wrong.is_empty(), "name the module, not the crate root:\n{}", wrong.join("\n"));
}

#[test]
fn no_circle_joins_files_of_two_modules() {
    let graph = graph();
    let nodes: Vec<&PathBuf> = graph.keys().collect();
    let index: BTreeMap<&PathBuf, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let edges: Vec<Vec<usize>> =
        nodes.iter().map(|n| graph[*n].iter().filter_map(|t| index.get(t).copied()).collect()).collect();
    let mut circles = Vec::new();
    for component in strongly_connected(&edges) {
        let modules: BTreeSet<String> = component.iter().map(|&i| module_of(nodes[i])).collect();
        if modules.len() > 1 {
            let files: Vec<String> = component.iter().map(|&i| short(nodes[i])).collect();
            circles.push(format!("{modules:?}: {}", files.join(", ")));
        }
    }
    assert!(circles.is_empty(), "import circles across modules:\n{}", circles.join("\n"));
}

/// Tarjan's strongly connected components, without recursion.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let (mut index, mut low, mut on_stack) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&(v, child)) = work.last() {
            if child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(child) {
                if let Some(top) = work.last_mut() {
                    top.1 += 1;
                }
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

#[test]
fn the_check_sees_an_upward_path_and_a_circle() {
    // the scanner itself: a path in code counts, one in a comment does not
    let found = paths(&code("use crate::sim::SimServer;\n// crate::serve::x\nlet a = crate::router::Router::new();"));
    assert_eq!(found, vec![vec!["sim".to_owned()], vec!["router".to_owned()]]);
    assert_eq!(resolve(&["router".into(), "faults".into()]), Some(src().join("router/faults.rs")));
    let circles = strongly_connected(&[vec![1], vec![0], vec![]]);
    assert!(circles.iter().any(|c| c.len() == 2), "{circles:?}");
}
