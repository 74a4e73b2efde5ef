//! The OpenAI adapter: Chat Completions (and every OpenAI-compatible server), or the Responses
//! API ([`OpenAi::responses`]), whose answers it reads through their Chat Completions translation.
//!
//! The wire itself (bodies, errors, streams) is [`crate::wire::openai_chat`]'s; `classify` turns
//! failures into [`ErrorClass`]es, `stream` decodes server-sent events.

mod classify;
mod stream;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};
use tokio::time::{Instant, Sleep};

use super::timer::{self, Limits};
use super::{Call, ChatStream, Protocol, Provider, ProviderConfig, http};
use crate::chat::ChatResponse;
use crate::error::{ErrorClass, ProviderError};
use crate::profile::ProviderProfile;
use classify::REQUEST_ID_HEADER;
use stream::StreamContext;

/// An OpenAI Chat Completions provider: `POST {base_url}/chat/completions`.
///
/// Works with OpenAI itself and any OpenAI-compatible server (set `base_url`). Its `Debug` shows
/// the config without the key or header values.
///
/// ```no_run
/// use switchyard::{Call, ChatRequest, OpenAi, Provider};
/// # async fn run() -> Result<(), switchyard::ProviderError> {
/// let openai = OpenAi::from_env()?; // OPENAI_API_KEY
/// let request = ChatRequest::user("Say hello");
/// let answer = openai.chat(Call::new("gpt-4o-mini", &request)).await?;
/// println!("{}", answer.text);
/// # Ok(()) }
/// ```
pub struct OpenAi {
    config: ProviderConfig,
    /// Chat Completions, or the Responses API.
    protocol: Protocol,
    client: reqwest::Client,
    url: String,
    embeddings_url: String,
    /// Authorization and the config's headers, validated once.
    headers: HeaderMap,
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAi").field("url", &self.url).field("config", &self.config).finish_non_exhaustive()
    }
}

impl OpenAi {
    /// An adapter for `config`. Fails when the HTTP client cannot start, or when the key or a
    /// configured header cannot be sent as an HTTP header.
    pub fn new(config: ProviderConfig) -> Result<OpenAi, ProviderError> {
        let client = http::client(&config)?;
        let headers = request_headers(&config)?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let embeddings_url = format!("{}/embeddings", config.base_url.trim_end_matches('/'));
        Ok(OpenAi { config, protocol: Protocol::Openai, client, url, embeddings_url, headers })
    }

    /// An adapter for `config` that speaks the Responses API: `POST {base_url}/responses`
    /// ([`Protocol::OpenaiResponses`]). Requests are encoded through their Chat Completions
    /// encoding (what the Responses API cannot carry is reported like any unsupported field; a
    /// caller's own Responses body goes unchanged), answers and streams are read back into the
    /// same [`ChatResponse`] and events.
    pub fn responses(config: ProviderConfig) -> Result<OpenAi, ProviderError> {
        let mut adapter = OpenAi::new(config)?;
        adapter.protocol = Protocol::OpenaiResponses;
        adapter.url = format!("{}/responses", adapter.config.base_url.trim_end_matches('/'));
        Ok(adapter)
    }

    /// An adapter for the built-in `openai` profile, with the key from `OPENAI_API_KEY`. A missing
    /// key is reported by the first call, as an `authentication` error, without a request.
    pub fn from_env() -> Result<OpenAi, ProviderError> {
        let profile = ProviderProfile::builtin("openai").ok_or_else(|| {
            ProviderError::new(ErrorClass::InvalidRequest, "openai", "the built-in `openai` profile is missing")
        })?;
        OpenAi::new(ProviderConfig::from_profile(profile))
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A profile that wants a key and no key: fail before touching the network.
    fn check_key(&self) -> Result<(), ProviderError> {
        self.config.missing_key().map_or(Ok(()), Err)
    }

    /// Sends the request; the response headers must arrive within the call's limits.
    async fn post(
        &self,
        call: &Call<'_>,
        streaming: bool,
        limits: &Limits,
        timer: Pin<&mut Option<Sleep>>,
    ) -> Result<reqwest::Response, ProviderError> {
        self.check_key()?;
        let profile = self.config.profile.as_deref();
        let (body, mut extra) = http::encode_call(&self.config.name, self.protocol, call, profile, streaming)?;
        self.config.caller_headers.apply(call.request, &mut extra);
        let headers = if extra.is_empty() { self.headers.clone() } else { http::merge_headers(&self.headers, &extra) };
        let request = self.client.post(&self.url).headers(headers).header(CONTENT_TYPE, "application/json").body(body);
        http::send(&self.config.name, request, limits, timer).await
    }

    /// A non-2xx response as a classified error. A body that cannot be read still leaves the status.
    async fn failure(
        &self,
        response: reqwest::Response,
        limits: &Limits,
        timer: Pin<&mut Option<Sleep>>,
    ) -> ProviderError {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = read_error_body(response, limits, timer).await;
        classify::http_error(&self.config.name, self.config.api_key.as_ref(), status, &headers, &body)
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// `POST {base_url}/embeddings` with the caller's body, its `model` set.
    async fn embed(
        &self,
        call: Call<'_>,
        request: &crate::embed::EmbeddingRequest,
    ) -> Result<crate::embed::EmbeddingResponse, ProviderError> {
        self.check_key()?;
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let body = request.body_for(call.model);
        let sent = self
            .client
            .post(&self.embeddings_url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        let response = http::send(&self.config.name, sent, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.failure(response, &limits, timer).await);
        }
        let status = response.status().as_u16();
        let request_id = http::header_str(response.headers(), REQUEST_ID_HEADER);
        let body = http::read_body(&self.config.name, response, &limits, timer).await?;
        crate::embed::EmbeddingResponse::decode(&body, request_id.clone()).ok_or_else(|| {
            // redacted before it is cut: a key across the cut would leave its prefix
            let text = String::from_utf8_lossy(&body).into_owned();
            let text = self.config.api_key.as_ref().map_or(text.clone(), |k| k.redact(&text));
            let snippet: String = text.chars().take(200).collect();
            let mut e = ProviderError::new(
                ErrorClass::MalformedResponse,
                &self.config.name,
                format!("not an embeddings answer: {snippet}"),
            )
            .with_status(status);
            e.set_request_id(request_id);
            e
        })
    }

    /// OpenAI has no counting endpoint for chat: the request is counted here with the model's
    /// own tokenizer ([`crate::tokens`]), without a call.
    async fn count_tokens(&self, call: Call<'_>) -> Result<super::TokenCount, ProviderError> {
        crate::tokens::count_openai(call.model, call.request)
            .map(|n| super::TokenCount::new(n, true))
            .map_err(|why| ProviderError::new(ErrorClass::InvalidRequest, self.name(), why))
    }

    fn protocol(&self) -> Protocol {
        self.protocol
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let response = self.post(&call, false, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.failure(response, &limits, timer).await);
        }
        let status = response.status().as_u16();
        let request_id = http::header_str(response.headers(), REQUEST_ID_HEADER);
        let rate_limit = super::RateLimit::from_headers(response.headers(), std::time::SystemTime::now());
        let body = http::read_body(&self.config.name, response, &limits, timer).await?;
        let body = match self.protocol {
            Protocol::OpenaiResponses => responses_as_chat(&body),
            _ => Ok(body),
        };
        let mut answer = body
            .and_then(|body| {
                crate::wire::openai_chat::response::decode_response(
                    &body,
                    &self.config.name,
                    call.model,
                    request_id.clone(),
                )
            })
            .map_err(|why| {
                let mut e = ProviderError::new(ErrorClass::MalformedResponse, self.config.name.clone(), why)
                    .with_status(status);
                e.set_request_id(request_id);
                e
            })?;
        answer.rate_limit = rate_limit;
        Ok(answer)
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let limits = Limits::new(&call.timeouts, Instant::now());
        let mut timer = std::pin::pin!(None::<Sleep>);
        let response = self.post(&call, true, &limits, timer.as_mut()).await?;
        if !response.status().is_success() {
            return Err(self.failure(response, &limits, timer).await);
        }
        let ctx = StreamContext {
            provider: self.config.name.clone(),
            key: self.config.api_key.clone(),
            request_id: http::header_str(response.headers(), REQUEST_ID_HEADER),
            grace: StreamContext::grace_for(call.timeouts.idle),
        };
        let content = http::ContentSeen::default();
        let limit = http::rate_limit_of(&response);
        let events = http::sse_events(self.config.name.clone(), response, limits, content.clone());
        let decoded = match self.protocol {
            Protocol::OpenaiResponses => stream::decode(responses_as_chunks(events), ctx),
            _ => stream::decode(events, ctx),
        };
        Ok(http::with_rate_limit(http::watch_content(decoded, content), limit))
    }

    fn enforces_deadline(&self) -> bool {
        true
    }
}

/// A Responses answer as the Chat Completions answer it means.
fn responses_as_chat(body: &[u8]) -> Result<bytes::Bytes, String> {
    let response: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON response object: {e}"))?;
    let chat = crate::wire::openai_responses::response::to_chat(&response)?;
    serde_json::to_vec(&chat).map(bytes::Bytes::from).map_err(|e| e.to_string())
}

/// Responses events as the Chat Completions chunks they mean (an event that is not JSON goes on
/// as it came, for the chunk decoder to report).
fn responses_as_chunks<S>(
    events: S,
) -> impl futures::Stream<Item = Result<crate::wire::sse::SseEvent, ProviderError>> + Send
where
    S: futures::Stream<Item = Result<crate::wire::sse::SseEvent, ProviderError>> + Send + 'static,
{
    use futures::StreamExt;
    let mut reader = crate::wire::openai_responses::stream::Reader::new();
    events.flat_map(move |event| {
        let out: Vec<Result<crate::wire::sse::SseEvent, ProviderError>> = match event {
            Ok(e) => match serde_json::from_str::<serde_json::Value>(&e.data) {
                Ok(data) => reader
                    .read(&data)
                    .into_iter()
                    .map(|data| Ok(crate::wire::sse::SseEvent { event: String::new(), data }))
                    .collect(),
                Err(_) => vec![Ok(e)],
            },
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(out)
    })
}

/// Error bodies are read only this far: classification needs their start, and a misbehaving proxy
/// must not make the adapter buffer without bound.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Reads up to [`ERROR_BODY_LIMIT`] bytes of an error body; a stall, a cut or the call's deadline
/// just ends it early.
async fn read_error_body(
    mut response: reqwest::Response,
    limits: &Limits,
    mut timer: Pin<&mut Option<Sleep>>,
) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        let limit = || limits.next_read(Instant::now());
        let Ok(chunk) = timer::wait_for(timer.as_mut(), limit, response.chunk()).await else { break };
        match chunk {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// `Authorization: Bearer KEY` (marked sensitive) and the config's headers. Errors name the header,
/// never its value.
fn request_headers(config: &ProviderConfig) -> Result<HeaderMap, ProviderError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = http::key_header(config, "Bearer ")? {
        headers.insert(AUTHORIZATION, value);
    }
    http::add_config_headers(&mut headers, config)?;
    Ok(headers)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::secret::ApiKey;

    #[test]
    fn url_trims_trailing_slashes() {
        for base in ["http://h/v1", "http://h/v1/"] {
            assert_eq!(OpenAi::new(ProviderConfig::new("p", base)).unwrap().url(), "http://h/v1/chat/completions");
        }
    }

    #[test]
    fn headers_carry_bearer_key_and_config_headers() {
        let c = ProviderConfig::new("openai", "http://h")
            .api_key(ApiKey::new("sk-abc"))
            .header("OpenAI-Organization", "org-1")
            .header("OpenAI-Project", "proj-1");
        let h = request_headers(&c).unwrap();
        assert_eq!(h.get(AUTHORIZATION).unwrap().to_str().unwrap(), "Bearer sk-abc");
        assert!(h.get(AUTHORIZATION).unwrap().is_sensitive());
        assert_eq!(h.get("openai-organization").unwrap(), "org-1");
        assert_eq!(h.get("openai-project").unwrap(), "proj-1");
        assert!(request_headers(&ProviderConfig::new("p", "http://h")).unwrap().is_empty());
    }

    #[test]
    fn unsendable_key_or_header_fails_without_echoing_it() {
        let e =
            OpenAi::new(ProviderConfig::new("p", "http://h").api_key(ApiKey::new("sk-bad\nkey-value"))).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Authentication);
        assert!(!format!("{e} {e:?}").contains("key-value"));
        let e = OpenAi::new(ProviderConfig::new("p", "http://h").header("X-Custom", "line\nbreak-secret")).unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidRequest);
        assert!(e.message().contains("X-Custom") && !e.message().contains("break-secret"));
    }

    #[test]
    fn missing_key_is_an_authentication_error_naming_the_variable() {
        let profile = ProviderProfile::builtin("openai").unwrap();
        let mut config = ProviderConfig::from_profile(profile);
        config.api_key = None;
        let e = OpenAi::new(config).unwrap().check_key().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Authentication);
        assert!(e.message().contains("OPENAI_API_KEY"), "{}", e.message());

        let mut keyless = ProviderProfile::builtin("openai").unwrap().as_ref().clone();
        keyless.auth = crate::profile::AuthScheme::None;
        let config = ProviderConfig::new("local", "http://h").profile(Arc::new(keyless));
        assert!(OpenAi::new(config).unwrap().check_key().is_ok());
        assert!(OpenAi::new(ProviderConfig::new("bare", "http://h")).unwrap().check_key().is_ok());
    }

    #[test]
    fn from_env_uses_the_builtin_profile() {
        let openai = OpenAi::from_env().unwrap();
        assert_eq!(openai.name(), "openai");
        assert_eq!(openai.protocol(), Protocol::Openai);
        assert_eq!(openai.url(), "https://api.openai.com/v1/chat/completions");
    }

    #[test]
    fn debug_hides_key_and_header_values() {
        let c = ProviderConfig::new("openai", "http://h")
            .api_key(ApiKey::new("sk-very-secret"))
            .header("OpenAI-Organization", "org-secret");
        let s = format!("{:?}", OpenAi::new(c).unwrap());
        assert!(!s.contains("sk-very-secret") && !s.contains("org-secret"), "{s}");
        assert!(s.contains("OpenAI-Organization"), "{s}");
    }
}
