//! The Anthropic Messages adapter (`POST /v1/messages`): request and response bodies in `wire`,
//! error classification in `classify`, the streaming protocol in `stream`.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::{Instant, Sleep};

use super::timer::Limits;
use super::{Call, ChatStream, Protocol, Provider, ProviderConfig, http};
use crate::chat::ChatResponse;
use crate::error::{ErrorClass, ProviderError};
use crate::profile::ProviderProfile;

mod classify;
mod stream;

use crate::wire::anthropic::error::ErrorBody;
use crate::wire::anthropic::response::MessagesResponse;

/// The API version sent when the config's headers do not pin one.
const API_VERSION: &str = "2023-06-01";

/// An Anthropic Messages provider (`api.anthropic.com` or anything speaking its wire).
///
/// ```no_run
/// use switchyard::{Anthropic, Call, ChatRequest, Provider};
/// # async fn run() -> Result<(), switchyard::ProviderError> {
/// let claude = Anthropic::from_env()?; // ANTHROPIC_API_KEY
/// let request = ChatRequest::user("Say hi").max_tokens(32);
/// let answer = claude.chat(Call::new("claude-sonnet-4-5", &request)).await?;
/// println!("{}", answer.text);
/// # Ok(()) }
/// ```
pub struct Anthropic {
    config: ProviderConfig,
    client: reqwest::Client,
    url: String,
    count_url: String,
    /// Key, version, content type and the config's headers, checked once.
    headers: HeaderMap,
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ProviderConfig's Debug already hides the key and header values
        f.debug_struct("Anthropic").field("url", &self.url).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Anthropic {
    /// An adapter for `config`. Fails on a header name or value (or a key) that cannot go on the
    /// wire; a missing key is reported by each call instead, without a network call.
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let client = http::client(&config)?;
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        let headers = request_headers(&config)?;
        let count_url = format!("{url}/count_tokens");
        Ok(Anthropic { config, client, url, count_url, headers })
    }

    /// An adapter from the built-in `anthropic` profile, its key from `ANTHROPIC_API_KEY`.
    pub fn from_env() -> Result<Self, ProviderError> {
        let profile = ProviderProfile::builtin("anthropic").ok_or_else(|| {
            ProviderError::new(ErrorClass::InvalidRequest, "anthropic", "the built-in `anthropic` profile is missing")
        })?;
        Self::new(ProviderConfig::from_profile(profile))
    }

    /// The config the adapter was built from.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// A profile that wants a key and no key set fails here, so the request never leaves.
    fn check_key(&self) -> Result<(), ProviderError> {
        self.config.missing_key().map_or(Ok(()), Err)
    }

    /// The HTTP request for `call`.
    fn http_request(&self, call: &Call<'_>, stream: bool) -> Result<reqwest::RequestBuilder, ProviderError> {
        let profile = self.config.profile.as_deref();
        let (bytes, mut extra) = http::encode_call(self.name(), Protocol::Anthropic, call, profile, stream)?;
        self.config.caller_headers.apply(call.request, &mut extra);
        let headers = if extra.is_empty() { self.headers.clone() } else { http::merge_headers(&self.headers, &extra) };
        Ok(self.client.post(&self.url).headers(headers).body(bytes))
    }

    /// Checks the key, maps the request and sends it; the response headers must arrive within the
    /// call's limits.
    async fn send(
        &self,
        call: &Call<'_>,
        stream: bool,
        limits: &Limits,
        timer: Pin<&mut Option<Sleep>>,
    ) -> Result<reqwest::Response, ProviderError> {
        self.check_key()?;
        http::send(self.name(), self.http_request(call, stream)?, limits, timer).await
    }

    /// A non-2xx answer as a classified error. A body that cannot be read still leaves the status.
    async fn error_response(
        &self,
        response: reqwest::Response,
        limits: &Limits,
        timer: Pin<&mut Option<Sleep>>,
    ) -> ProviderError {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http::read_body(self.name(), response, limits, timer).await.unwrap_or_default();
        classify::classify_response(self.name(), status, &headers, &body, self.config.api_key.as_ref())
    }

    /// A 2xx body as the answer. Some gateways answer errors with a 200: Anthropic's error envelope is
    /// classified like any error; anything else that does not decode is `malformed_response`.
    fn decode_response(&self, status: u16, headers: &HeaderMap, body: &Bytes) -> Result<ChatResponse, ProviderError> {
        let header_id = http::header_str(headers, "request-id");
        let error = match MessagesResponse::decode(body) {
            Ok(message) => return Ok(message.into_chat_response(self.name(), header_id)),
            Err(e) => e,
        };
        let key = self.config.api_key.as_ref();
        let classified = match ErrorBody::parse(body) {
            Some(parsed) if parsed.error_type.is_some() => {
                classify::classify_response(self.name(), status, headers, body, key)
            }
            _ => {
                // serde quotes what it could not decode: the key may be in there
                let message = format!(
                    "undecodable response body ({}): {}",
                    classify::redact(key, &error.to_string()),
                    classify::snippet(body, key)
                );
                let mut e = ProviderError::new(ErrorClass::MalformedResponse, self.name(), message).with_status(status);
                e.set_request_id(header_id);
                e
            }
        };
        Err(classified)
    }
}

/// Every request's headers: `x-api-key`, `anthropic-version` (unless the config pins one: the built-in
/// profile does, and it must not go twice), `content-type`, then the config's own.
fn request_headers(config: &ProviderConfig) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = http::key_header(config, "")? {
        headers.insert("x-api-key", value);
    }
    headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    http::add_config_headers(&mut headers, config)?;
    Ok(headers)
}

#[async_trait]
impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn protocol(&self) -> Protocol {
        Protocol::Anthropic
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let response = self.send(&call, false, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.error_response(response, &limits, timer).await);
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http::read_body(self.name(), response, &limits, timer).await.map_err(|mut e| {
            e.set_request_id(http::header_str(&headers, "request-id"));
            e
        })?;
        let mut answer = self.decode_response(status, &headers, &body)?;
        answer.rate_limit = super::RateLimit::from_headers(&headers, std::time::SystemTime::now());
        Ok(answer)
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let response = self.send(&call, true, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.error_response(response, &limits, timer).await);
        }
        let ctx = stream::StreamContext {
            provider: self.config.name.clone(),
            request_id: http::header_str(response.headers(), "request-id"),
            key: self.config.api_key.clone(),
        };
        let content = http::ContentSeen::default();
        let limit = http::rate_limit_of(&response);
        let events = http::sse_events(self.config.name.clone(), response, limits, content.clone());
        Ok(http::with_rate_limit(http::watch_content(stream::decode(ctx, events), content), limit))
    }

    /// Asks `POST /v1/messages/count_tokens` with the request's Messages body, cut to the
    /// members that endpoint takes.
    async fn count_tokens(&self, call: Call<'_>) -> Result<super::TokenCount, ProviderError> {
        self.check_key()?;
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let profile = self.config.profile.as_deref();
        let (bytes, extra) = http::encode_call(self.name(), Protocol::Anthropic, &call, profile, false)?;
        let body = count_body(self.name(), &bytes)?;
        let headers = if extra.is_empty() { self.headers.clone() } else { http::merge_headers(&self.headers, &extra) };
        let request = self.client.post(&self.count_url).headers(headers).body(body);
        let response = http::send(self.name(), request, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.error_response(response, &limits, timer).await);
        }
        let status = response.status().as_u16();
        let request_id = http::header_str(response.headers(), "request-id");
        let body = http::read_body(self.name(), response, &limits, timer).await?;
        match serde_json::from_slice::<CountResponse>(&body) {
            Ok(c) => {
                let mut count = super::TokenCount::new(c.input_tokens, false);
                count.extra = c.extra;
                Ok(count)
            }
            Err(e) => {
                let key = self.config.api_key.as_ref();
                let message = format!("undecodable count_tokens answer ({e}): {}", classify::snippet(&body, key));
                let mut e = ProviderError::new(ErrorClass::MalformedResponse, self.name(), message).with_status(status);
                e.set_request_id(request_id);
                Err(e)
            }
        }
    }

    fn enforces_deadline(&self) -> bool {
        true
    }
}

/// `count_tokens`' answer.
#[derive(serde::Deserialize)]
struct CountResponse {
    input_tokens: u64,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The members of a Messages body that only steer generation: `count_tokens` refuses them and they
/// cannot change the count (the encoder adds `max_tokens`, and sampling settings, for a request
/// from the other wire). Everything else, members newer than this list included, is sent.
const GENERATION_ONLY: &[&str] =
    &["max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata", "service_tier"];

fn count_body(provider: &str, messages_body: &[u8]) -> Result<Vec<u8>, ProviderError> {
    let invalid = |e: serde_json::Error| ProviderError::new(ErrorClass::InvalidRequest, provider, e.to_string());
    let mut body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(messages_body).map_err(invalid)?;
    body.retain(|k, _| !GENERATION_ONLY.contains(&k.as_str()));
    serde_json::to_vec(&body).map_err(invalid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::secret::ApiKey;

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn headers_carry_key_one_version_and_config_extras() {
        let profile = ProviderProfile::builtin("anthropic").unwrap();
        let mut config =
            ProviderConfig::from_profile(profile).header("anthropic-beta", "a").header("Anthropic-Beta", "b");
        config.api_key = Some(ApiKey::new("sk-ant-key-1"));
        let h = request_headers(&config).unwrap();
        assert_eq!(values(&h, "x-api-key"), ["sk-ant-key-1"]);
        assert!(h.get("x-api-key").unwrap().is_sensitive());
        assert_eq!(values(&h, "anthropic-version"), ["2023-06-01"]);
        assert_eq!(values(&h, "content-type"), ["application/json"]);
        assert_eq!(values(&h, "anthropic-beta"), ["a", "b"]);

        let pinned = ProviderConfig::new("a", "http://x").header("anthropic-version", "2099-01-01");
        assert_eq!(values(&request_headers(&pinned).unwrap(), "anthropic-version"), ["2099-01-01"]);
        let bare = request_headers(&ProviderConfig::new("a", "http://x")).unwrap();
        assert_eq!(values(&bare, "anthropic-version"), [API_VERSION]);
        assert!(bare.get("x-api-key").is_none());
    }

    #[test]
    fn unusable_headers_fail_at_construction_without_echoing_values() {
        let bad_value = ProviderConfig::new("a", "http://x").header("x-team", "secret\nvalue");
        let err = Anthropic::new(bad_value).unwrap_err();
        assert_eq!(err.class(), ErrorClass::InvalidRequest);
        assert!(err.message().contains("x-team") && !err.message().contains("secret"), "{}", err.message());
        let bad_name = ProviderConfig::new("a", "http://x").header("bad name", "v");
        assert_eq!(Anthropic::new(bad_name).unwrap_err().class(), ErrorClass::InvalidRequest);
        let bad_key = ProviderConfig::new("a", "http://x").api_key(ApiKey::new("sk-ant\r\nsecret"));
        let err = Anthropic::new(bad_key).unwrap_err();
        assert_eq!(err.class(), ErrorClass::Authentication);
        assert!(!err.message().contains("secret"));
    }

    #[test]
    fn url_trims_the_trailing_slash() {
        let a = Anthropic::new(ProviderConfig::new("a", "http://127.0.0.1:9/anthropic/")).unwrap();
        assert_eq!(a.url, "http://127.0.0.1:9/anthropic/v1/messages");
        assert_eq!(a.protocol(), Protocol::Anthropic);
        assert_eq!(Provider::name(&a), "a");
    }
}
