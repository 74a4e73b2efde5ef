//! What agents and SDKs ask a gateway before (or beside) chatting: the connectivity probe at `/`,
//! and the models, listed and one by one, in the shape of the SDK that asks: OpenAI's, or
//! Anthropic's for a caller that sends `anthropic-version`; open and behind client keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use support::TestGateway;
use switchyard::sim::SimServer;

/// A gateway with routes `chat`, `claude` and `solo` in front of the simulator, with `keys` (a key
/// file's text) when given.
struct Setup {
    _sim: SimServer,
    _gateway: TestGateway,
    base: String,
    http: reqwest::Client,
}

async fn setup(keys: Option<&str>) -> Setup {
    let sim = support::sim().await;
    let (server, files) = match keys {
        Some(keys) => ("[server]\nkeys_file = \"keys.toml\"\n", vec![("keys.toml", keys)]),
        None => ("", vec![]),
    };
    let policy = format!(
        "{server}{}\n[routes.chat]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}, \
         {{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}]\n\
         [routes.claude]\ntargets = [{{ provider = \"anthropic\", model = \"claude-sonnet-4-5\" }}]\n\
         [routes.solo]\ntargets = [{{ provider = \"openai\", model = \"gpt-4o-mini\" }}]\n",
        sim.providers_toml()
    );
    let gateway = support::gateway_with(&policy, &files).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    Setup { _sim: sim, base: gateway.base.clone(), _gateway: gateway, http }
}

/// How a caller presents itself: an OpenAI SDK (a bearer token, if any), or an Anthropic one
/// (`anthropic-version`, and `x-api-key` if any).
#[derive(Clone, Copy)]
enum Sdk<'a> {
    OpenAi(Option<&'a str>),
    Anthropic(Option<&'a str>),
}

impl Setup {
    fn request(&self, method: Method, path: &str, sdk: Sdk<'_>) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match sdk {
            Sdk::OpenAi(None) => r,
            Sdk::OpenAi(Some(key)) => r.bearer_auth(key),
            Sdk::Anthropic(key) => {
                let r = r.header("anthropic-version", "2023-06-01");
                match key {
                    Some(key) => r.header("x-api-key", key),
                    None => r,
                }
            }
        }
    }

    async fn get(&self, path: &str, sdk: Sdk<'_>) -> (StatusCode, Value) {
        let r = self.request(Method::GET, path, sdk).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect()
}

/// Panics unless `error` is an Anthropic error body of `kind`.
fn assert_anthropic_error(error: &Value, kind: &str) {
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], kind, "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");
}

/// Panics unless `error` is an OpenAI error body.
fn assert_openai_error(error: &Value) {
    assert!(error["error"]["message"].is_string(), "{error}");
    assert!(error["error"]["type"].is_string(), "{error}");
    assert!(error.get("type").is_none(), "{error}");
}

#[tokio::test]
async fn the_root_answers_probes_without_a_key() {
    for keys in [None, Some("[keys.app]\nkey = \"sk-app\"\n")] {
        let s = setup(keys).await;
        let r = s.request(Method::HEAD, "/", Sdk::OpenAi(None)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD has no body");
        let r = s.request(Method::GET, "/", Sdk::Anthropic(None)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert!(body.len() < 64, "a tiny body: {body:?}");
        // the key still guards everything else
        let (status, _) = s.get("/v1/models", Sdk::OpenAi(None)).await;
        assert_eq!(status, if keys.is_some() { 401 } else { 200 });
    }
}

#[tokio::test]
async fn models_come_in_the_shape_of_the_sdk_that_asks() {
    let s = setup(None).await;
    let (status, openai) = s.get("/v1/models", Sdk::OpenAi(None)).await;
    assert_eq!(status, 200);
    assert_eq!(openai["object"], "list");
    assert_eq!(ids(&openai), ["chat", "claude", "solo"]);
    assert_eq!(openai["data"][0]["object"], "model");
    assert_eq!(openai["data"][0]["owned_by"], "switchyard");

    let (status, anthropic) = s.get("/v1/models", Sdk::Anthropic(None)).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&anthropic), ["chat", "claude", "solo"]);
    assert_eq!(anthropic["has_more"], false);
    assert_eq!((anthropic["first_id"].as_str(), anthropic["last_id"].as_str()), (Some("chat"), Some("solo")));
    assert!(anthropic.get("object").is_none(), "{anthropic}");
    for model in anthropic["data"].as_array().unwrap() {
        assert_eq!(model["type"], "model");
        assert_eq!(model["display_name"], model["id"]);
        assert_eq!(model["created_at"], "1970-01-01T00:00:00Z");
        assert!(model.get("object").is_none() && model.get("created").is_none(), "{model}");
    }
    // the gateway's own members in both shapes; Anthropic's `capabilities` map is not the gateway's
    let (ours, theirs) = (&anthropic["data"][0], &openai["data"][0]);
    for member in ["targets", "models", "capabilities"] {
        assert_eq!(ours["switchyard"][member], theirs[member], "{member}");
    }
    assert_eq!(ours["switchyard"]["targets"][1], "anthropic/claude-sonnet-4-5");
    assert_eq!(ours["capabilities"], Value::Null);
    assert_eq!(ours["lifecycle"], "active");
    // the largest of the route's models: gpt-4o-mini's and claude-sonnet-4-5's
    let largest = |field: &str| theirs["models"].as_array().unwrap().iter().map(|m| m[field].as_u64().unwrap()).max();
    assert_eq!(ours["max_input_tokens"].as_u64(), largest("context_window"));
    assert_eq!(ours["max_tokens"].as_u64(), largest("max_output_tokens"));
    assert_eq!(ours["max_input_tokens"].as_u64(), theirs["capabilities"]["context_window"].as_u64());

    // one at a time
    let (status, one) = s.get("/v1/models/claude", Sdk::OpenAi(None)).await;
    assert_eq!(status, 200);
    assert_eq!((one["id"].as_str(), one["object"].as_str()), (Some("claude"), Some("model")));
    let (status, one) = s.get("/v1/models/claude", Sdk::Anthropic(None)).await;
    assert_eq!(status, 200);
    assert_eq!((one["id"].as_str(), one["type"].as_str()), (Some("claude"), Some("model")));
    assert_eq!(one, anthropic["data"][1]);

    // an unknown one: 404 in the caller's dialect
    let (status, error) = s.get("/v1/models/gpt-5", Sdk::OpenAi(None)).await;
    assert_eq!(status, 404);
    assert_openai_error(&error);
    assert!(error["error"]["message"].as_str().unwrap().contains("gpt-5"), "{error}");
    let (status, error) = s.get("/v1/models/gpt-5", Sdk::Anthropic(None)).await;
    assert_eq!(status, 404);
    assert_anthropic_error(&error, "not_found_error");
}

#[tokio::test]
async fn anthropic_pages_follow_limit_after_id_and_before_id() {
    let s = &setup(None).await;
    let page = |query: &'static str| async move { s.get(&format!("/v1/models{query}"), Sdk::Anthropic(None)).await };
    let (_, first) = page("?limit=2").await;
    assert_eq!(ids(&first), ["chat", "claude"]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["last_id"], "claude");
    // the next page, as the SDK's auto-paging asks it
    let (_, next) = page("?limit=2&after_id=claude").await;
    assert_eq!(ids(&next), ["solo"]);
    assert_eq!(next["has_more"], false);
    assert_eq!((next["first_id"].as_str(), next["last_id"].as_str()), (Some("solo"), Some("solo")));
    // backwards from the end
    let (_, back) = page("?limit=1&before_id=solo").await;
    assert_eq!(ids(&back), ["claude"]);
    assert_eq!(back["has_more"], true);
    let (_, back) = page("?before_id=claude").await;
    assert_eq!(ids(&back), ["chat"]);
    assert_eq!(back["has_more"], false);
    // past the end: an empty page
    let (_, empty) = page("?after_id=solo").await;
    assert_eq!(ids(&empty), Vec::<&str>::new());
    assert_eq!((empty["first_id"].clone(), empty["has_more"].clone()), (Value::Null, Value::Bool(false)));
    for bad in ["?limit=0", "?limit=1001", "?limit=many"] {
        let (status, error) = page(bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_anthropic_error(&error, "invalid_request_error");
    }
}

#[tokio::test]
async fn with_client_keys_each_sdk_authenticates_its_own_way_and_sees_its_routes() {
    let s = setup(Some("[keys.app]\nkey = \"sk-app\"\nroutes = [\"chat\"]\n[keys.ops]\nkey = \"sk-ops\"\n")).await;
    // no key, or a wrong one: 401 in the caller's dialect
    for path in ["/v1/models", "/v1/models/chat"] {
        let (status, error) = s.get(path, Sdk::Anthropic(None)).await;
        assert_eq!(status, 401, "{path}");
        assert_anthropic_error(&error, "authentication_error");
        let (status, error) = s.get(path, Sdk::Anthropic(Some("sk-wrong"))).await;
        assert_eq!(status, 401, "{path}");
        assert_anthropic_error(&error, "authentication_error");
        let (status, error) = s.get(path, Sdk::OpenAi(Some("sk-wrong"))).await;
        assert_eq!(status, 401, "{path}");
        assert_openai_error(&error);
    }
    // Anthropic's SDKs send `x-api-key`, OpenAI's a bearer token: both are keys here
    let (status, page) = s.get("/v1/models", Sdk::Anthropic(Some("sk-app"))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), ["chat"], "only the routes the key may use");
    assert_eq!(page["data"][0]["type"], "model");
    let (status, list) = s.get("/v1/models", Sdk::OpenAi(Some("sk-app"))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&list), ["chat"]);
    let (_, all) = s.get("/v1/models", Sdk::Anthropic(Some("sk-ops"))).await;
    assert_eq!(ids(&all), ["chat", "claude", "solo"]);
    // a route the key may not use: 403, as a chat request for it gets
    let (status, one) = s.get("/v1/models/chat", Sdk::Anthropic(Some("sk-app"))).await;
    assert_eq!((status, one["id"].as_str()), (StatusCode::OK, Some("chat")));
    let (status, error) = s.get("/v1/models/solo", Sdk::Anthropic(Some("sk-app"))).await;
    assert_eq!(status, 403);
    assert_anthropic_error(&error, "permission_error");
    let (status, error) = s.get("/v1/models/solo", Sdk::OpenAi(Some("sk-app"))).await;
    assert_eq!(status, 403);
    assert_openai_error(&error);
}
