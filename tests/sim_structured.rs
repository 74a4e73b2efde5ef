//! The simulator asked for structured output on each of its wires, whole and streamed: a JSON
//! schema answered with JSON valid for it, JSON mode with an object, a forced tool with
//! arguments valid for the tool's schema, in the wire's own shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::sse_data;
use switchyard::sim::SimServer;

/// A schema as clients write them: a nested model by reference, an enum, a date, bounds, a
/// nullable member and a minimum of items.
fn forecast_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "array", "items": {"$ref": "#/$defs/Day"}, "minItems": 2},
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "unit", "days", "note"],
        "additionalProperties": false,
        "$defs": {"Day": {
            "type": "object",
            "properties": {
                "date": {"type": "string", "format": "date"},
                "high": {"type": "integer", "minimum": -50, "maximum": 60},
            },
            "required": ["date", "high"],
            "additionalProperties": false,
        }},
    })
}

/// Panics unless `text` is a forecast valid for [`forecast_schema`].
fn assert_forecast(text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let o = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["city", "days", "note", "unit"], "{v}");
    assert!(v["city"].as_str().is_some_and(|c| c.contains("forecast")), "the prompt's words: {v}");
    assert!(["celsius", "fahrenheit"].contains(&v["unit"].as_str().unwrap()), "{v}");
    assert!(v["note"].is_string() || v["note"].is_null(), "{v}");
    let days = v["days"].as_array().unwrap();
    assert!(days.len() >= 2, "{v}");
    for day in days {
        let date = day["date"].as_str().unwrap();
        assert!(
            date.len() == 10
                && date.char_indices().all(|(i, c)| if i == 4 || i == 7 { c == '-' } else { c.is_ascii_digit() }),
            "{date}"
        );
        assert!((-50..=60).contains(&day["high"].as_i64().unwrap()), "{v}");
        assert_eq!(day.as_object().unwrap().len(), 2, "{v}");
    }
}

/// A tool whose arguments have a schema, and one that asks nothing of them.
fn lookup_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 3},
            "kind": {"enum": ["book", "film"]},
            "limit": {"type": "integer", "minimum": 5, "maximum": 10},
        },
        "required": ["query", "kind", "limit"],
    })
}

/// Panics unless `arguments` are valid for [`lookup_parameters`].
fn assert_lookup(arguments: &Value) {
    assert!(arguments["query"].as_str().is_some_and(|q| q.chars().count() >= 3), "{arguments}");
    assert!(["book", "film"].contains(&arguments["kind"].as_str().unwrap()), "{arguments}");
    assert!((5..=10).contains(&arguments["limit"].as_i64().unwrap()), "{arguments}");
}

struct Sim {
    server: SimServer,
    http: reqwest::Client,
}

impl Sim {
    async fn start() -> Sim {
        Sim { server: support::sim().await, http: reqwest::Client::new() }
    }

    /// A whole answer: the status must be 200.
    async fn whole(&self, path: &str, body: &Value) -> Value {
        let r = self.http.post(format!("{}{path}", self.server.url())).json(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    /// A streamed answer's events: the status must be 200.
    async fn streamed(&self, path: &str, body: &Value) -> Vec<Value> {
        let mut body = body.clone();
        body["stream"] = json!(true);
        let r = self.http.post(format!("{}{path}", self.server.url())).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        sse_data(&r.text().await.unwrap())
    }
}

/// The strings at `pointer` of every event of type `kind`, joined: each such event must have one.
fn joined(events: &[Value], kind: &str, pointer: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no {pointer}: {e}")))
        .collect()
}

const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/anthropic/v1/messages";
const RESPONSES: &str = "/v1/responses";

const PROMPT: &str = "The forecast for Paris please";

// ---------------------------------------------------------------- OpenAI Chat Completions

fn chat_body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}], "max_completion_tokens": 2000})
}

/// The text of a streamed chat answer, and its finish reason.
fn chat_stream_text(events: &[Value]) -> (String, String) {
    let text = events.iter().filter_map(|e| e.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    let finish = events.iter().find_map(|e| e.pointer("/choices/0/finish_reason").and_then(Value::as_str)).unwrap();
    (text, finish.to_owned())
}

#[tokio::test]
async fn chat_completions_json_schema_and_json_object_whole_and_streamed() {
    let sim = Sim::start().await;
    let mut body = chat_body();
    body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "forecast", "strict": true, "schema": forecast_schema()}});
    let v = sim.whole(CHAT, &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let whole = v["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert_forecast(&whole);
    // usage counts the JSON as tokens of about four characters
    assert_eq!(v["usage"]["completion_tokens"].as_u64(), Some(whole.chars().count().div_ceil(4) as u64));

    let events = sim.streamed(CHAT, &body).await;
    let (text, finish) = chat_stream_text(&events);
    assert!(events.len() > 4, "the JSON arrives in pieces: {}", events.len());
    assert_eq!(finish, "stop");
    assert_eq!(text, whole, "streamed and whole agree");

    body["response_format"] = json!({"type": "json_object"});
    let v = sim.whole(CHAT, &body).await;
    let object: Value = serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(object.is_object(), "{object}");
    let (text, _) = chat_stream_text(&sim.streamed(CHAT, &body).await);
    assert!(serde_json::from_str::<Value>(&text).unwrap().is_object(), "{text}");
}

#[tokio::test]
async fn chat_completions_forced_tool_has_arguments_for_its_schema() {
    let sim = Sim::start().await;
    let mut body = chat_body();
    body["tools"] = json!([
        {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "lookup", "parameters": lookup_parameters()}},
    ]);
    for choice in [json!({"type": "function", "function": {"name": "lookup"}}), json!("required")] {
        body["tool_choice"] = choice.clone();
        let named = choice.is_object();
        let v = sim.whole(CHAT, &body).await;
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        if named {
            assert_eq!(call["function"]["name"], "lookup");
            assert_lookup(&arguments);
        } else {
            // `required` calls the first tool, whose schema asks nothing: the prompt, as before
            assert_eq!(call["function"]["name"], "search");
            assert_eq!(arguments, json!({"input": PROMPT}));
        }

        let events = sim.streamed(CHAT, &body).await;
        let calls: Vec<&Value> = events.iter().filter_map(|e| e.pointer("/choices/0/delta/tool_calls/0")).collect();
        assert_eq!(calls[0]["function"]["name"], call["function"]["name"]);
        let streamed: String = calls.iter().filter_map(|c| c.pointer("/function/arguments")?.as_str()).collect();
        assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), arguments, "streamed and whole agree");
        let finish = events.iter().find_map(|e| e.pointer("/choices/0/finish_reason")?.as_str()).unwrap();
        assert_eq!(finish, "tool_calls");
    }
}

// ---------------------------------------------------------------- Anthropic Messages

fn messages_body() -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 2000, "messages": [{"role": "user", "content": PROMPT}]})
}

#[tokio::test]
async fn anthropic_output_format_whole_and_streamed() {
    let sim = Sim::start().await;
    let mut body = messages_body();
    body["output_format"] = json!({"type": "json_schema", "schema": forecast_schema()});
    let v = sim.whole(MESSAGES, &body).await;
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    let whole = v["content"][0]["text"].as_str().unwrap().to_owned();
    assert_forecast(&whole);

    let events = sim.streamed(MESSAGES, &body).await;
    let text = joined(&events, "content_block_delta", "/delta/text");
    assert_eq!(text, whole, "streamed and whole agree");
    let stop = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "end_turn");

    // the same schema where the current API puts it
    let mut body = messages_body();
    body["output_config"] = json!({"format": {"type": "json_schema", "schema": forecast_schema()}});
    let v = sim.whole(MESSAGES, &body).await;
    assert_eq!(v["content"][0]["text"].as_str(), Some(whole.as_str()));
}

#[tokio::test]
async fn anthropic_forced_tool_has_input_for_its_schema() {
    let sim = Sim::start().await;
    let mut body = messages_body();
    body["tools"] = json!([
        {"name": "search", "input_schema": {"type": "object"}},
        {"name": "lookup", "input_schema": lookup_parameters()},
    ]);
    body["tool_choice"] = json!({"type": "tool", "name": "lookup"});
    let v = sim.whole(MESSAGES, &body).await;
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!((block["type"].as_str(), block["name"].as_str()), (Some("tool_use"), Some("lookup")));
    assert_lookup(&block["input"]);

    let events = sim.streamed(MESSAGES, &body).await;
    let start = events.iter().find(|e| e["type"] == "content_block_start").unwrap();
    assert_eq!(start["content_block"]["name"], "lookup");
    let partial = joined(&events, "content_block_delta", "/delta/partial_json");
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), block["input"], "streamed and whole agree");
    let stop = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");

    // `any` with tools calls the first, whose schema asks nothing
    body["tool_choice"] = json!({"type": "any"});
    let v = sim.whole(MESSAGES, &body).await;
    assert_eq!(v["content"][0]["name"], "search");
    assert_eq!(v["content"][0]["input"], json!({"input": PROMPT}));
}

// ---------------------------------------------------------------- OpenAI Responses

fn responses_body() -> Value {
    json!({"model": "gpt-4.1", "input": PROMPT, "max_output_tokens": 2000})
}

#[tokio::test]
async fn responses_text_format_whole_and_streamed() {
    let sim = Sim::start().await;
    let mut body = responses_body();
    body["text"] =
        json!({"format": {"type": "json_schema", "name": "forecast", "strict": true, "schema": forecast_schema()}});
    let v = sim.whole(RESPONSES, &body).await;
    assert_eq!(v["status"], "completed");
    let message = v["output"].as_array().unwrap().iter().find(|o| o["type"] == "message").unwrap();
    let whole = message["content"][0]["text"].as_str().unwrap().to_owned();
    assert_forecast(&whole);

    let events = sim.streamed(RESPONSES, &body).await;
    let text = joined(&events, "response.output_text.delta", "/delta");
    assert_eq!(text, whole, "streamed and whole agree");
    assert_eq!(events.last().unwrap()["type"], "response.completed");

    body["text"] = json!({"format": {"type": "json_object"}});
    let v = sim.whole(RESPONSES, &body).await;
    let message = v["output"].as_array().unwrap().iter().find(|o| o["type"] == "message").unwrap();
    assert!(serde_json::from_str::<Value>(message["content"][0]["text"].as_str().unwrap()).unwrap().is_object());
}

#[tokio::test]
async fn responses_forced_tool_has_arguments_for_its_schema() {
    let sim = Sim::start().await;
    let mut body = responses_body();
    body["tools"] = json!([{"type": "function", "name": "lookup", "parameters": lookup_parameters()}]);
    for choice in [json!("required"), json!({"type": "function", "name": "lookup"})] {
        body["tool_choice"] = choice;
        let v = sim.whole(RESPONSES, &body).await;
        let call = v["output"].as_array().unwrap().iter().find(|o| o["type"] == "function_call").unwrap();
        assert_eq!(call["name"], "lookup");
        let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_lookup(&arguments);

        let events = sim.streamed(RESPONSES, &body).await;
        let added = events.iter().find(|e| e["type"] == "response.output_item.added").unwrap();
        assert_eq!(added["item"]["type"], "function_call");
        assert_eq!(added["item"]["name"], "lookup");
        let streamed = joined(&events, "response.function_call_arguments.delta", "/delta");
        assert_eq!(serde_json::from_str::<Value>(&streamed).unwrap(), arguments, "streamed and whole agree");
        assert_eq!(events.last().unwrap()["type"], "response.completed");
    }
}
