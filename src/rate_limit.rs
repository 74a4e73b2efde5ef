//! What the providers say of their rate limits on every answer, errors included: OpenAI's
//! `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (resets as durations: `1s`, `6m0s`,
//! `644ms`), Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens}-{limit,remaining,reset}`
//! (resets as RFC 3339 times). The router learns each target's budget from them and steers away
//! before it is spent, instead of waiting for the 429.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

/// One answer's rate-limit headers, read. Resets are durations from when the answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RateLimit {
    /// Requests allowed in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_limit: Option<u64>,
    /// Requests left in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_remaining: Option<u64>,
    /// Until the request budget is whole again.
    #[serde(
        default,
        rename = "requests_reset_ms",
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::duration::ser::opt_millis",
        deserialize_with = "crate::duration::de::opt_millis"
    )]
    pub requests_reset: Option<Duration>,
    /// Tokens allowed in the window (Anthropic: the most restrictive of its token limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_limit: Option<u64>,
    /// Tokens left in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_remaining: Option<u64>,
    /// Until the token budget is whole again.
    #[serde(
        default,
        rename = "tokens_reset_ms",
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::duration::ser::opt_millis",
        deserialize_with = "crate::duration::de::opt_millis"
    )]
    pub tokens_reset: Option<Duration>,
}

impl RateLimit {
    /// What `headers` say, read at `now` (for Anthropic's reset times); `None` when they carry no
    /// rate-limit header of either provider.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<RateLimit> {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let count = |name: &str| get(name).and_then(|v| v.parse::<u64>().ok());
        let openai_reset = |name: &str| get(name).and_then(go_duration).map(|d| d.min(LONGEST_RESET));
        let anthropic_reset = |name: &str| {
            let at = humantime::parse_rfc3339_weak(get(name)?).ok()?;
            Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(LONGEST_RESET))
        };
        let limit = if headers.contains_key("x-ratelimit-remaining-requests")
            || headers.contains_key("x-ratelimit-remaining-tokens")
        {
            RateLimit {
                requests_limit: count("x-ratelimit-limit-requests"),
                requests_remaining: count("x-ratelimit-remaining-requests"),
                requests_reset: openai_reset("x-ratelimit-reset-requests"),
                tokens_limit: count("x-ratelimit-limit-tokens"),
                tokens_remaining: count("x-ratelimit-remaining-tokens"),
                tokens_reset: openai_reset("x-ratelimit-reset-tokens"),
            }
        } else {
            // `tokens` is the most restrictive of Anthropic's token limits; older answers have
            // only the input-token one
            let [limit, remaining, reset] = if headers.contains_key("anthropic-ratelimit-tokens-remaining") {
                [
                    "anthropic-ratelimit-tokens-limit",
                    "anthropic-ratelimit-tokens-remaining",
                    "anthropic-ratelimit-tokens-reset",
                ]
            } else {
                [
                    "anthropic-ratelimit-input-tokens-limit",
                    "anthropic-ratelimit-input-tokens-remaining",
                    "anthropic-ratelimit-input-tokens-reset",
                ]
            };
            RateLimit {
                requests_limit: count("anthropic-ratelimit-requests-limit"),
                requests_remaining: count("anthropic-ratelimit-requests-remaining"),
                requests_reset: anthropic_reset("anthropic-ratelimit-requests-reset"),
                tokens_limit: count(limit),
                tokens_remaining: count(remaining),
                tokens_reset: anthropic_reset(reset),
            }
        };
        (limit.requests_remaining.is_some() || limit.tokens_remaining.is_some()).then_some(limit)
    }
}

/// A reset further out than this is taken as this: no provider's window is longer, and a header
/// that says otherwise must not push a target out for years.
const LONGEST_RESET: Duration = Duration::from_secs(24 * 3600);

/// A Go duration as OpenAI writes its resets: `644ms`, `6m0s`, `1m26.4s`, `1h2m3.5s`, `20µs`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * scale;
        rest = next;
    }
    // (a value past what a Duration holds is only longer than any window: clamped by the caller)
    total.is_finite().then(|| Duration::try_from_secs_f64(total).unwrap_or(Duration::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn openai_headers_with_their_durations() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "500"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "644ms"),
            ("x-ratelimit-limit-tokens", "30000"),
            ("x-ratelimit-remaining-tokens", "29000"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let r = RateLimit::from_headers(&h, SystemTime::now()).unwrap();
        assert_eq!((r.requests_limit, r.requests_remaining), (Some(500), Some(0)));
        assert_eq!(r.requests_reset, Some(Duration::from_millis(644)));
        assert_eq!((r.tokens_remaining, r.tokens_reset), (Some(29_000), Some(Duration::from_secs(360))));
        let fractional = headers(&[("x-ratelimit-remaining-tokens", "10"), ("x-ratelimit-reset-tokens", "7.5s")]);
        let r = RateLimit::from_headers(&fractional, SystemTime::now()).unwrap();
        assert_eq!(r.tokens_reset, Some(Duration::from_millis(7500)));
    }

    #[test]
    fn anthropic_headers_with_their_times() {
        let now = humantime::parse_rfc3339("2026-12-03T12:00:00Z").unwrap();
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "3"),
            ("anthropic-ratelimit-requests-reset", "2026-12-03T12:00:30Z"),
            ("anthropic-ratelimit-input-tokens-remaining", "9"),
            ("anthropic-ratelimit-tokens-limit", "80000"),
            ("anthropic-ratelimit-tokens-remaining", "1200"),
            ("anthropic-ratelimit-tokens-reset", "2026-12-03T11:59:00Z"),
        ]);
        let r = RateLimit::from_headers(&h, now).unwrap();
        assert_eq!((r.requests_remaining, r.requests_reset), (Some(3), Some(Duration::from_secs(30))));
        assert_eq!(r.tokens_remaining, Some(1200), "the combined limit, not the input one");
        assert_eq!(r.tokens_reset, Some(Duration::ZERO), "a reset in the past is now");
    }

    #[test]
    fn go_durations_with_fractions_and_absurd_resets() {
        assert_eq!(go_duration("1m26.4s"), Some(Duration::from_millis(86_400)));
        assert_eq!(go_duration("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
        assert_eq!(go_duration("20µs"), Some(Duration::from_micros(20)));
        assert_eq!(go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration("1e400s"), None);
        let h = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "100000000000000000000s"),
        ]);
        let r = RateLimit::from_headers(&h, SystemTime::now()).unwrap();
        assert_eq!(r.requests_reset, Some(LONGEST_RESET), "clamped, not a panic");
    }

    #[test]
    fn no_headers_or_garbage_say_nothing() {
        assert_eq!(RateLimit::from_headers(&HeaderMap::new(), SystemTime::now()), None);
        let h = headers(&[("x-ratelimit-remaining-requests", "lots"), ("x-ratelimit-reset-requests", "soon")]);
        assert_eq!(RateLimit::from_headers(&h, SystemTime::now()), None);
    }
}
