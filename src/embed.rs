//! Embeddings (`POST /v1/embeddings`, OpenAI's wire, which every OpenAI-compatible server with
//! embeddings speaks): the request is the caller's JSON object, sent to each target with only its
//! `model` replaced, so `dimensions`, `encoding_format`, `user` and members that do not exist yet
//! arrive untouched; the answer is the provider's JSON object, relayed as it came.

use serde_json::{Map, Value};

use crate::chat::{ChatRequest, Message, Role};

/// An embeddings request: the body as the caller wrote it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmbeddingRequest {
    /// The body, `model` included (the route's name until a target replaces it).
    pub body: Map<String, Value>,
}

impl EmbeddingRequest {
    /// A request for `input` (a string, or an array of strings or of token arrays).
    pub fn new(input: impl Into<Value>) -> Self {
        let mut body = Map::new();
        body.insert("input".into(), input.into());
        EmbeddingRequest { body }
    }

    /// Decodes a caller's body; the error names what is wrong.
    pub fn decode(body: &[u8]) -> Result<(String, EmbeddingRequest), String> {
        let body: Map<String, Value> = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
        let route = match body.get("model") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err("`model` must be a string".into()),
            None => return Err("`model` is required".into()),
        };
        match body.get("input") {
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) if !items.is_empty() => {
                let ok = items.iter().all(|i| match i {
                    Value::String(_) => true,
                    Value::Array(tokens) => tokens.iter().all(Value::is_u64),
                    Value::Number(n) => n.is_u64(),
                    _ => false,
                });
                if !ok {
                    return Err("`input` must be a string, an array of strings, or token arrays".into());
                }
            }
            Some(Value::Array(_)) => return Err("`input` must not be empty".into()),
            Some(_) => return Err("`input` must be a string, an array of strings, or token arrays".into()),
            None => return Err("`input` is required".into()),
        }
        if let Some(d) = body.get("dimensions")
            && d.as_u64().is_none_or(|d| d == 0)
        {
            return Err("`dimensions` must be a positive integer".into());
        }
        Ok((route, EmbeddingRequest { body }))
    }

    /// Sets `dimensions` (models that can shorten their vectors).
    pub fn dimensions(mut self, n: u32) -> Self {
        self.body.insert("dimensions".into(), n.into());
        self
    }

    /// The body for `model`.
    pub fn body_for(&self, model: &str) -> Vec<u8> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(model.to_owned()));
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The input as text, for the router's token limits (token arrays count one per token).
    pub(crate) fn as_chat(&self) -> ChatRequest {
        let mut text = String::new();
        let mut tokens = 0usize;
        let mut add = |v: &Value| match v {
            Value::String(s) => {
                text.push_str(s);
                text.push('\n');
            }
            Value::Array(t) => tokens += t.len(),
            Value::Number(_) => tokens += 1,
            _ => {}
        };
        match self.body.get("input") {
            Some(Value::Array(items)) if items.iter().all(Value::is_number) => tokens += items.len(),
            Some(Value::Array(items)) => items.iter().for_each(&mut add),
            Some(other) => add(other),
            None => {}
        }
        // a token array costs its length: four characters a token for the estimate
        text.push_str(&" ___".repeat(tokens));
        ChatRequest::new([Message::text(Role::User, text)]).max_tokens(0)
    }
}

/// An embeddings answer: the provider's body, and what the router needs from it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmbeddingResponse {
    /// The provider's JSON object, as it came.
    pub body: Value,
    /// Input tokens (`usage.prompt_tokens`).
    pub input_tokens: u64,
    /// The provider's request id.
    pub request_id: Option<String>,
}

impl EmbeddingResponse {
    /// Reads a provider's answer; `None` when it is not an embeddings list.
    pub fn decode(body: &[u8], request_id: Option<String>) -> Option<EmbeddingResponse> {
        let body: Value = serde_json::from_slice(body).ok()?;
        let data = body.get("data")?.as_array()?;
        let well_formed = data.iter().all(|d| d.get("embedding").is_some_and(|e| e.is_array() || e.is_string()));
        if !well_formed {
            return None;
        }
        let input_tokens = body.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
        Some(EmbeddingResponse { body, input_tokens, request_id })
    }

    /// The length of the first vector (float vectors only).
    pub fn dimensions(&self) -> Option<usize> {
        self.body.pointer("/data/0/embedding").and_then(Value::as_array).map(Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_body_is_kept_whole_and_checked() {
        let (route, r) =
            EmbeddingRequest::decode(br#"{"model":"embed","input":["a","b"],"dimensions":256,"x_future":1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(route, "embed");
        let sent: Value = serde_json::from_slice(&r.body_for("text-embedding-3-small")).unwrap_or_default();
        assert_eq!(sent["model"], "text-embedding-3-small");
        assert_eq!((sent["dimensions"].as_u64(), sent["x_future"].as_u64()), (Some(256), Some(1)));
        for (bad, why) in [
            (r#"{"input":"a"}"#, "`model` is required"),
            (r#"{"model":"e"}"#, "`input` is required"),
            (r#"{"model":"e","input":[]}"#, "must not be empty"),
            (r#"{"model":"e","input":[{"a":1}]}"#, "token arrays"),
            (r#"{"model":"e","input":"a","dimensions":0}"#, "positive integer"),
        ] {
            let e = EmbeddingRequest::decode(bad.as_bytes()).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(EmbeddingRequest::decode(br#"{"model":"e","input":[[1,2,3]]}"#).is_ok());
    }
}
