//! The Anthropic Messages adapter (`POST /v1/messages`): request and response bodies in `wire`,
//! error classification in `classify`, the streaming protocol in `stream`.

// `ProviderError` is what the `Provider` trait returns; boxing it in private helpers only to unbox
// it at the trait boundary would buy nothing.
#![allow(clippy::result_large_err)]

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::Instant;

use super::{Call, ChatStream, Protocol, Provider, ProviderConfig, http};
use crate::chat::ChatResponse;
use crate::error::{ErrorClass, ProviderError};
use crate::profile::{AuthScheme, ProviderProfile};

mod classify;
mod stream;
mod wire;

use classify::ErrorBody;
use wire::MessagesRequest;

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
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ProviderConfig's Debug already hides the key and header values
        f.debug_struct("Anthropic").field("url", &self.url).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Anthropic {
    /// An adapter for `config`. A missing key is reported by each call, not here.
    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let client = http::client(&config)?;
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        Ok(Anthropic { config, client, url })
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

    fn name(&self) -> &str {
        &self.config.name
    }

    /// A profile that wants a key and no key set fails here, so the request never leaves.
    fn check_key(&self) -> Result<(), ProviderError> {
        let Some(profile) = &self.config.profile else { return Ok(()) };
        if profile.auth == AuthScheme::None || self.config.api_key.is_some() {
            return Ok(());
        }
        let message = match &profile.api_key_env {
            Some(var) => format!("no API key: set {var}"),
            None => "no API key configured".to_owned(),
        };
        Err(ProviderError::new(ErrorClass::Authentication, self.name(), message))
    }

    fn has_header(&self, name: &str) -> bool {
        self.config.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The HTTP request for `body`: URL, auth, version and the config's headers.
    fn http_request(&self, body: &MessagesRequest<'_>) -> Result<reqwest::RequestBuilder, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| {
            ProviderError::new(ErrorClass::InvalidRequest, self.name(), format!("cannot encode the request: {e}"))
        })?;
        let mut request = self.client.post(&self.url).body(bytes);
        if let Some(key) = &self.config.api_key {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderError::new(ErrorClass::Authentication, self.name(), "the API key is not a valid header value")
            })?;
            // keeps it out of reqwest's and hyper's Debug output
            value.set_sensitive(true);
            request = request.header("x-api-key", value);
        }
        // the built-in profile pins the version in its headers: never send it twice
        if !self.has_header("anthropic-version") {
            request = request.header("anthropic-version", API_VERSION);
        }
        if !self.has_header(CONTENT_TYPE.as_str()) {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        Ok(request)
    }

    /// Checks the key, maps the request and sends it; returns the response with its status and headers.
    async fn send(&self, call: &Call<'_>, stream: bool) -> Result<(reqwest::Response, Instant), ProviderError> {
        let start = Instant::now();
        self.check_key()?;
        let body = wire::build_request(self.name(), call.model, call.request, self.config.profile.as_deref(), stream)?;
        let deadline = call.timeouts.first_token.map(|t| start + t);
        let response = http::send(self.name(), self.http_request(&body)?, deadline).await?;
        Ok((response, start))
    }

    /// A non-2xx answer as a classified error. A body that cannot be read still leaves the status.
    async fn error_response(&self, response: reqwest::Response, call: &Call<'_>) -> ProviderError {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http::read_body(self.name(), response, call.timeouts.idle).await.unwrap_or_default();
        classify::classify_response(self.name(), status, &headers, &body, self.config.api_key.as_ref())
    }

    /// A 2xx body as the answer. Some gateways answer errors with a 200: Anthropic's error envelope is
    /// classified like any error; anything else that does not decode is `malformed_response`.
    fn decode_response(&self, status: u16, headers: &HeaderMap, body: &Bytes) -> Result<ChatResponse, ProviderError> {
        let header_id = http::header_str(headers, "request-id");
        let error = match wire::MessagesResponse::decode(body) {
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
                let e = ProviderError::new(ErrorClass::MalformedResponse, self.name(), message);
                let mut e = http::error_with_response_meta(e, status, headers, "request-id");
                // the class decides here: a success status says nothing about retrying garbage
                e.should_retry = None;
                e
            }
        };
        Err(classified)
    }
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
        let (response, _) = self.send(&call, false).await?;
        if !response.status().is_success() {
            return Err(self.error_response(response, &call).await);
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = http::read_body(self.name(), response, call.timeouts.idle).await.map_err(|mut e| {
            e.request_id = http::header_str(&headers, "request-id");
            e
        })?;
        self.decode_response(status, &headers, &body)
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let (response, start) = self.send(&call, true).await?;
        if !response.status().is_success() {
            return Err(self.error_response(response, &call).await);
        }
        let ctx = stream::StreamContext {
            provider: self.config.name.clone(),
            request_id: http::header_str(response.headers(), "request-id"),
            key: self.config.api_key.clone(),
        };
        let first = call.timeouts.first_token.map(|t| start + t);
        let events = http::sse_events(self.config.name.clone(), response, first, call.timeouts.idle);
        Ok(stream::decode(ctx, events))
    }
}
