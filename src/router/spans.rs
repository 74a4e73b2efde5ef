//! Tracing spans that cost nothing while nobody records them.

use tracing::Span;
use tracing::level_filters::LevelFilter;

/// `make()` when some subscriber records INFO spans, else `None`. Even a disabled span costs: every
/// enter, exit and drop of it runs tracing's `log` compatibility checks (on in this build, through
/// tower), and a request enters its spans at every poll.
pub(crate) fn info(make: impl FnOnce() -> Span) -> Option<Span> {
    (tracing::Level::INFO <= LevelFilter::current()).then(make)
}

/// The span of one request (`chat {route}` for OpenTelemetry), with the GenAI attributes the
/// semantic conventions name; what served it is recorded when it ends ([`served`], [`failed`]).
#[macro_export]
#[doc(hidden)]
macro_rules! request_span {
    ($route:expr, $stream:expr) => {
        tracing::info_span!(
            "gen_ai.chat",
            "otel.name" = %format_args!("chat {}", $route),
            "otel.kind" = "client",
            "otel.status_code" = tracing::field::Empty,
            "gen_ai.operation.name" = "chat",
            "switchyard.route" = %$route,
            "switchyard.stream" = $stream,
            stream = $stream,
            "gen_ai.provider.name" = tracing::field::Empty,
            "switchyard.provider" = tracing::field::Empty,
            "gen_ai.request.model" = tracing::field::Empty,
            "gen_ai.response.model" = tracing::field::Empty,
            "gen_ai.usage.input_tokens" = tracing::field::Empty,
            "gen_ai.usage.output_tokens" = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        )
    };
}

/// What served the request: its target (`provider` as the policy names it, `system` as the GenAI
/// conventions do) and usage.
pub(crate) fn served(
    span: &Span,
    (provider, system): (&str, &str),
    model: &str,
    response_model: &str,
    usage: &crate::chat::Usage,
) {
    span.record("gen_ai.provider.name", system);
    span.record("switchyard.provider", provider);
    span.record("gen_ai.request.model", model);
    span.record("gen_ai.response.model", response_model);
    span.record("gen_ai.usage.input_tokens", usage.input_tokens);
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
}

/// The request failed with `class`.
pub(crate) fn failed(span: &Span, class: crate::error::ErrorClass) {
    span.record("error.type", class.as_str());
    span.record("otel.status_code", "ERROR");
}
