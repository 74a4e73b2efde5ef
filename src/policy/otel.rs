//! `[otel]`: OpenTelemetry export of the gateway's traces and metrics over OTLP/HTTP. Read when
//! `switchyard serve` starts (like the listen addresses); the standard `OTEL_EXPORTER_OTLP_*`
//! variables fill in what the table leaves out, and turn export on without it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diagnostic::Collector;
use crate::duration::DurationStr;

/// `[otel]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtelSpec {
    endpoint: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    service_name: Option<Spanned<String>>,
    traces: Option<bool>,
    metrics: Option<bool>,
    metrics_interval: Option<Spanned<DurationStr>>,
}

/// How OTLP is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `http/protobuf` (the OpenTelemetry default).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `http/json`.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// Its name in policies and in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }

    /// From its name; `grpc` is refused with why.
    pub fn parse(name: &str) -> Result<OtlpProtocol, String> {
        match name.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Ok(OtlpProtocol::HttpJson),
            "grpc" => Err("OTLP over gRPC is not built in: use \"http/protobuf\" (port 4318 of a collector)".into()),
            other => Err(format!("unknown OTLP protocol `{other}`: \"http/protobuf\" or \"http/json\"")),
        }
    }
}

/// `[otel]` as the policy resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OtelSettings {
    /// The collector's OTLP/HTTP base address (`/v1/traces` and `/v1/metrics` are appended);
    /// `None`: `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal variables), else
    /// `http://localhost:4318`.
    pub endpoint: Option<String>,
    /// `None`: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
    pub protocol: Option<OtlpProtocol>,
    /// `None`: `OTEL_SERVICE_NAME`, else `switchyard`.
    pub service_name: Option<String>,
    /// Export spans.
    pub traces: bool,
    /// Export metrics.
    pub metrics: bool,
    /// How often metrics are sent.
    #[serde(serialize_with = "crate::duration::ser::human")]
    pub metrics_interval: Duration,
}

/// Metrics are sent this often unless the policy says otherwise.
pub(crate) const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// Checks `[otel]`: an http(s) address without credentials (headers carrying keys belong in
/// `OTEL_EXPORTER_OTLP_HEADERS`, never in a policy), a protocol this build speaks, an interval
/// from 1 s to 1 h.
pub(crate) fn compile(c: &mut Collector<'_>, spec: OtelSpec) -> OtelSettings {
    let endpoint = spec.endpoint.as_ref().map(|e| {
        let url = e.get_ref().trim().trim_end_matches('/').to_owned();
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&url).is_err() {
            c.error(&e.span(), "otel.endpoint", "an OTLP/HTTP address: \"http://collector:4318\"");
        } else if reqwest::Url::parse(&url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some()) {
            c.error(
                &e.span(),
                "otel.endpoint",
                "no credentials in the address: give them in OTEL_EXPORTER_OTLP_HEADERS (`authorization=...`)",
            );
        }
        url
    });
    let protocol = spec.protocol.as_ref().and_then(|p| match OtlpProtocol::parse(p.get_ref()) {
        Ok(p) => Some(p),
        Err(why) => {
            c.error(&p.span(), "otel.protocol", why);
            None
        }
    });
    let service_name = spec.service_name.as_ref().map(|s| {
        if s.get_ref().trim().is_empty() {
            c.error(&s.span(), "otel.service_name", "a service name is not empty");
        }
        s.get_ref().trim().to_owned()
    });
    let metrics_interval = match &spec.metrics_interval {
        Some(d) => {
            if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&d.get_ref().get()) {
                c.error(&d.span(), "otel.metrics_interval", "metrics are sent every 1s to 1h (\"60s\" by default)");
            }
            d.get_ref().get()
        }
        None => DEFAULT_METRICS_INTERVAL,
    };
    if !cfg!(feature = "otel") {
        let span = spec.endpoint.as_ref().map_or(0..0, Spanned::span);
        c.error(&span, "otel", "switchyard was built without its `otel` feature: build it with `--features otel`");
    }
    OtelSettings {
        endpoint,
        protocol,
        service_name,
        traces: spec.traces.unwrap_or(true),
        metrics: spec.metrics.unwrap_or(true),
        metrics_interval,
    }
}
