//! Every example policy in `policies/` parses and validates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use switchyard::Policy;

#[test]
fn every_example_policy_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let policy = Policy::from_file(&path);
            assert!(policy.is_ok(), "{}: {}", path.display(), policy.err().map(|e| e.to_string()).unwrap_or_default());
            assert!(!policy.unwrap().routes.is_empty());
            n += 1;
        }
    }
    assert!(n >= 5, "expected the example policies, found {n}");
}

#[test]
fn every_drill_file_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/drills")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let drill = switchyard::drill::Drill::from_file(&path);
            assert!(drill.is_ok(), "{}: {}", path.display(), drill.err().map(|e| e.to_string()).unwrap_or_default());
            assert!(!drill.unwrap().phases.is_empty());
            n += 1;
        }
    }
    assert!(n >= 1, "expected the built-in drill at least");
}
