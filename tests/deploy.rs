//! The deployment examples in `deploy/`: the Kubernetes manifests and the docker-compose file
//! parse, describe a fleet (several gateway replicas, one Redis, probes on `/healthz`), and their
//! policy passes `switchyard check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn check(policy: &std::path::Path) -> String {
    let out = Command::new(support::binary())
        .args(["check", policy.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SWITCHYARD_REDIS_URL", "redis://switchyard-redis:6379")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_policy_of_the_examples_passes_check_and_shares_its_state_through_redis() {
    let out = check(std::path::Path::new("deploy/policy.toml"));
    assert!(out.contains("shared state: redis redis://switchyard-redis:6379 (fleet prod"), "{out}");
}

#[test]
fn the_kubernetes_example_runs_replicas_behind_a_service_with_redis_and_the_same_policy() {
    let text = read("deploy/kubernetes/switchyard.yaml");
    let docs: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    // the ConfigMap's policy is deploy/policy.toml, and it passes check
    let policy = find("ConfigMap", "switchyard-policy")["data"]["policy.toml"].as_str().unwrap().to_owned();
    assert_eq!(policy, read("deploy/policy.toml"), "the ConfigMap's copy of deploy/policy.toml differs from it");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, &policy).unwrap();
    check(&path);
    // several replicas, probed on /healthz, pointed at the Redis Service
    let gateway = find("Deployment", "switchyard");
    assert!(gateway["spec"]["replicas"].as_u64().unwrap() >= 2);
    let container = &gateway["spec"]["template"]["spec"]["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    let env = container["env"].as_sequence().unwrap();
    let redis_url = env.iter().find(|e| e["name"] == "SWITCHYARD_REDIS_URL").unwrap()["value"].as_str().unwrap();
    find("Service", "switchyard");
    let redis_service = find("Service", "switchyard-redis");
    assert!(redis_url.contains("switchyard-redis:6379"), "{redis_url}");
    assert_eq!(redis_service["spec"]["ports"][0]["port"], 6379);
    find("Deployment", "switchyard-redis");
    // keys come from a Secret, never written in the manifest
    assert!(
        env.iter()
            .filter(|e| e["name"].as_str().unwrap().ends_with("_KEY"))
            .all(|e| e["valueFrom"]["secretKeyRef"].is_mapping())
    );
}

#[test]
fn the_compose_example_runs_three_gateways_and_redis_on_the_policy() {
    let compose: Value = serde_yaml_ng::from_str(&read("deploy/docker-compose.yml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let gateways: Vec<&Value> =
        services.iter().filter(|(name, _)| name.as_str().unwrap().starts_with("gateway-")).map(|(_, s)| s).collect();
    assert_eq!(gateways.len(), 3);
    assert!(services.contains_key("redis"));
    for g in gateways {
        // (the anchors are merged: each gateway has the shared settings)
        let g = serde_yaml_ng::from_value::<Value>(g.clone()).unwrap();
        let mut merged = g.clone();
        merged.apply_merge().unwrap();
        assert_eq!(merged["environment"]["SWITCHYARD_REDIS_URL"], "redis://redis:6379", "{merged:?}");
        assert!(merged["volumes"][0].as_str().unwrap().starts_with("./policy.toml:"), "{merged:?}");
    }
}
