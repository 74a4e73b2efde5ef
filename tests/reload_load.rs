//! Many concurrent requests against the simulator while the policy file is rewritten hundreds of
//! times, valid and invalid edits interleaved: no request fails because of a reload, and the last
//! valid policy is the one in force at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use switchyard::sim::SimServer;
use switchyard::{ChatRequest, Policy, Router};

fn valid(sim: &SimServer, i: usize) -> String {
    let model = if i.is_multiple_of(2) { "gpt-4o-mini" } else { "gpt-4o" };
    format!(
        "# edit {i}\n{}[routes.chat]\ntargets = [{{ provider = \"openai\", model = \"{model}\" }}, {{ provider = \"anthropic\", model = \"claude-sonnet-4-5\", weight = {} }}]\n",
        sim.providers_toml(),
        1 + i % 5
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_edits_under_load_lose_no_request() {
    let sim = support::sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, valid(&sim, 0)).unwrap();
    let router = Router::new(Policy::from_file(&path).unwrap());
    let _watch =
        router.watch_with(&path, switchyard::router::WatchOptions { debounce: Duration::from_millis(5) }).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (router, stop, ok, failed) = (router.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let result = if (w + n) % 3 == 0 {
                    match router.chat_stream("chat", ChatRequest::user("hello")).await {
                        Ok(mut s) => {
                            let mut finished = false;
                            let mut error = None;
                            while let Some(item) = futures::StreamExt::next(&mut s).await {
                                match item {
                                    Ok(switchyard::StreamEvent::Finish { .. }) => finished = true,
                                    Ok(_) => {}
                                    Err(e) => error = Some(e.to_string()),
                                }
                            }
                            if finished { Ok(()) } else { Err(error.unwrap_or_default()) }
                        }
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    router.chat("chat", ChatRequest::user("hello")).await.map(|_| ()).map_err(|e| e.to_string())
                };
                match result {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
        }));
    }

    let mut last_valid = valid(&sim, 0);
    let mut rejected_seen = 0;
    let mut events = router.subscribe();
    for i in 1..=300 {
        let text = match i % 4 {
            // a half-written file: an editor that truncates first, caught mid-write
            1 => {
                let full = valid(&sim, i);
                full[..full.len() / 2].to_owned()
            }
            2 => "[routes.chat]\ntargets = [{ provider = \"nope\", model = \"x\" }]\n".to_owned(),
            _ => {
                last_valid = valid(&sim, i);
                last_valid.clone()
            }
        };
        std::fs::write(&path, &text).unwrap();
        tokio::time::sleep(Duration::from_millis(8)).await;
        while let Ok(e) = events.try_recv() {
            if matches!(e, switchyard::RouterEvent::PolicyRejected { .. }) {
                rejected_seen += 1;
            }
        }
    }
    // the last edit is valid: it must be the one in force
    let expected = Policy::from_toml(&last_valid, "x").unwrap().hash;
    support::eventually(Duration::from_secs(5), || router.health().policy_hash == expected).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(router.health().policy_hash, expected, "the last valid policy is in force");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request may fail because of a reload");
    assert!(ok.load(Ordering::Relaxed) > 100, "load was applied: {}", ok.load(Ordering::Relaxed));
    assert!(router.health().policy_version > 10, "many edits were applied: {}", router.health().policy_version);
    assert!(rejected_seen > 10, "bad edits were seen and rejected: {rejected_seen}");
}
