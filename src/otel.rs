//! OpenTelemetry export (feature `otel`): the router's tracing spans and a GenAI metric, sent to a
//! collector over OTLP/HTTP (Jaeger, Tempo, Honeycomb, Datadog and the OpenTelemetry Collector all
//! take it on port 4318).
//!
//! Spans follow the OpenTelemetry GenAI semantic conventions: one span per request
//! (`chat {route}`, with `gen_ai.operation.name`, and what served it:
//! `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
//! `gen_ai.usage.input_tokens` / `output_tokens`; `error.type` when it failed) and one per attempt
//! (`chat {model}`, with `gen_ai.provider.name`, `gen_ai.request.model` and `error.type`);
//! retries, failovers, hedges and resumed streams are events of the request span.
//! `gen_ai.provider.name` is the provider's profile (`openai`, `anthropic`, ...), and
//! `switchyard.provider` the policy's name for it. The metric is `gen_ai.client.operation.duration` (seconds, per attempt, with the
//! buckets the conventions advise). Start the exporters once per process.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tracing_subscriber::layer::SubscriberExt as _;
//! use tracing_subscriber::util::SubscriberInitExt as _;
//!
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318, or a config of one's own
//! if let Some(config) = switchyard::otel::OtelConfig::from_env()? {
//!     let otel = switchyard::otel::Otel::start(&config)?;
//!     tracing_subscriber::registry().with(otel.layer()).init();
//!     let router = switchyard::Router::builder(switchyard::Policy::from_file("policy.toml")?)
//!         .observer(otel.observer()) // the per-attempt metric
//!         .build();
//!     // ... route requests ...
//!     otel.shutdown();
//! }
//! # Ok(()) }
//! ```

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::policy::{OtelSettings, OtlpProtocol};
use crate::router::{AttemptOutcome, Observer, SeenAttempt};

/// The most of a collector's answer read (it is a small status message).
const MAX_ANSWER: usize = 1 << 20;
/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to export.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtelConfig {
    /// The collector's OTLP/HTTP base address; `None`: the `OTEL_EXPORTER_OTLP_*ENDPOINT`
    /// variables, else `http://localhost:4318`.
    pub endpoint: Option<String>,
    /// `http/protobuf` or `http/json`.
    pub protocol: OtlpProtocol,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Export spans.
    pub traces: bool,
    /// Export metrics.
    pub metrics: bool,
    /// How often metrics are sent.
    pub metrics_interval: Duration,
}

/// OpenTelemetry export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// A setting (or an `OTEL_*` variable) is not usable.
    #[error("OpenTelemetry: {0}")]
    Config(String),
    /// The exporter could not be built.
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(String),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn disabled() -> bool {
    var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

impl OtelConfig {
    /// Export to `endpoint` (an OTLP/HTTP base address such as `http://collector:4318`), traces
    /// and metrics, as `http/protobuf`, as the service `switchyard`.
    pub fn new(endpoint: impl Into<String>) -> OtelConfig {
        OtelConfig {
            endpoint: Some(endpoint.into()),
            protocol: OtlpProtocol::HttpProtobuf,
            service_name: "switchyard".into(),
            traces: true,
            metrics: true,
            metrics_interval: crate::policy::OTEL_METRICS_INTERVAL,
        }
    }

    /// Sends as `protocol`.
    pub fn protocol(mut self, protocol: OtlpProtocol) -> OtelConfig {
        self.protocol = protocol;
        self
    }

    /// The export the standard variables ask for: on when `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is set (each
    /// signal that has an endpoint; and `OTEL_SDK_DISABLED` is not `true`);
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME` and `OTEL_EXPORTER_OTLP_HEADERS` apply.
    pub fn from_env() -> Result<Option<OtelConfig>, OtelError> {
        let asked = [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        ]
        .iter()
        .any(|v| var(v).is_some());
        if disabled() || !asked {
            return Ok(None);
        }
        Self::with_env(None).map(Some)
    }

    /// The export a policy's `[otel]` asks for, the standard variables filling in what it leaves
    /// out; without the table, what the variables ask for ([`OtelConfig::from_env`]). `None` with
    /// `OTEL_SDK_DISABLED=true`.
    pub fn from_policy(settings: Option<&OtelSettings>) -> Result<Option<OtelConfig>, OtelError> {
        match settings {
            _ if disabled() => Ok(None),
            Some(s) => Self::with_env(Some(s)).map(Some),
            None => Self::from_env(),
        }
    }

    fn with_env(settings: Option<&OtelSettings>) -> Result<OtelConfig, OtelError> {
        let protocol = match settings.and_then(|s| s.protocol) {
            Some(p) => p,
            None => match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
                Some(p) => OtlpProtocol::parse(&p)
                    .map_err(|why| OtelError::Config(format!("OTEL_EXPORTER_OTLP_PROTOCOL: {why}")))?,
                None => OtlpProtocol::HttpProtobuf,
            },
        };
        Ok(OtelConfig {
            endpoint: settings.and_then(|s| s.endpoint.clone()),
            protocol,
            service_name: settings
                .and_then(|s| s.service_name.clone())
                .or_else(|| var("OTEL_SERVICE_NAME"))
                .unwrap_or_else(|| "switchyard".into()),
            // from the variables alone: each signal that has an endpoint
            traces: settings.map_or_else(
                || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some(),
                |s| s.traces,
            ),
            metrics: settings.map_or_else(
                || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some(),
                |s| s.metrics,
            ),
            metrics_interval: settings.map_or(crate::policy::OTEL_METRICS_INTERVAL, |s| s.metrics_interval),
        })
    }
}

/// The exporters in use; `shutdown` (or drop) sends what is left.
#[derive(Debug)]
pub struct Otel {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// The instruments of the GenAI metrics, made once the meter provider exists.
static INSTRUMENTS: OnceLock<Histogram<f64>> = OnceLock::new();

impl Otel {
    /// Starts the exporters. Must be called inside a tokio runtime (the exports run on it).
    pub fn start(config: &OtelConfig) -> Result<Otel, OtelError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| OtelError::Config("the exporters need a tokio runtime: start them inside one".into()))?;
        let resource = Resource::builder().with_service_name(config.service_name.clone()).build();
        let protocol = match config.protocol {
            OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
            _ => opentelemetry_otlp::Protocol::HttpBinary,
        };
        let client = Client { http: reqwest::Client::new(), runtime };
        let url = |path: &str| config.endpoint.as_ref().map(|base| format!("{}{path}", base.trim_end_matches('/')));
        let tracer_provider = if config.traces {
            let mut exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_protocol(protocol)
                .with_timeout(EXPORT_TIMEOUT);
            if let Some(u) = url("/v1/traces") {
                exporter = exporter.with_endpoint(u);
            }
            let exporter = exporter.build().map_err(|e| OtelError::Exporter(e.to_string()))?;
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.clone()).build())
        } else {
            None
        };
        let meter_provider = if config.metrics {
            let mut exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(protocol)
                .with_timeout(EXPORT_TIMEOUT);
            if let Some(u) = url("/v1/metrics") {
                exporter = exporter.with_endpoint(u);
            }
            let exporter = exporter.build().map_err(|e| OtelError::Exporter(e.to_string()))?;
            let reader = PeriodicReader::builder(exporter).with_interval(config.metrics_interval).build();
            let provider = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
            opentelemetry::global::set_meter_provider(provider.clone());
            let meter = opentelemetry::global::meter("switchyard");
            let _ = INSTRUMENTS.set(
                meter
                    .f64_histogram("gen_ai.client.operation.duration")
                    .with_unit("s")
                    .with_description("GenAI operation duration, per attempt")
                    // the buckets the GenAI semantic conventions advise for this metric
                    .with_boundaries(vec![
                        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                    ])
                    .build(),
            );
            Some(provider)
        } else {
            None
        };
        Ok(Otel { tracer_provider, meter_provider })
    }

    /// The observer that records each attempt of a router it is given to as the GenAI metric
    /// (`router.observe(otel.observer())`); it records nothing while metrics are off.
    pub fn observer(&self) -> std::sync::Arc<dyn Observer> {
        std::sync::Arc::new(AttemptMetrics)
    }

    /// The layer that turns the router's tracing spans into OpenTelemetry spans (a layer that
    /// does nothing when traces are off). Spans are exported at INFO and above.
    pub fn layer<S>(&self) -> Option<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let tracer = self.tracer_provider.as_ref()?.tracer("switchyard");
        Some(tracing_opentelemetry::layer().with_tracer(tracer).with_tracked_inactivity(false))
    }

    /// Sends what is buffered now.
    pub fn force_flush(&self) {
        if let Some(t) = &self.tracer_provider {
            let _ = t.force_flush();
        }
        if let Some(m) = &self.meter_provider {
            let _ = m.force_flush();
        }
    }

    /// Sends what is left and stops.
    pub fn shutdown(self) {
        if let Some(t) = &self.tracer_provider {
            let _ = t.shutdown();
        }
        if let Some(m) = &self.meter_provider {
            let _ = m.shutdown();
        }
    }
}

/// Records every attempt's duration as `gen_ai.client.operation.duration`, while metrics are
/// exported: the router's [`Observer`] for OpenTelemetry ([`Otel::observer`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AttemptMetrics;

impl Observer for AttemptMetrics {
    fn attempt(&self, seen: &SeenAttempt<'_>) {
        let Some(duration) = INSTRUMENTS.get() else { return };
        let a = seen.attempt;
        if a.outcome == AttemptOutcome::Skipped {
            return; // no operation took place
        }
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", seen.operation),
            KeyValue::new("gen_ai.provider.name", seen.provider_system().to_owned()),
            KeyValue::new("switchyard.provider", a.provider.clone()),
            KeyValue::new("gen_ai.request.model", a.model.clone()),
            KeyValue::new("switchyard.route", seen.route.to_owned()),
        ];
        if let Some(class) = a.class {
            attributes.push(KeyValue::new("error.type", class.as_str()));
        }
        duration.record(a.elapsed.as_secs_f64(), &attributes);
    }
}

/// The exporters' HTTP client: the crate's own reqwest, run on the runtime the exporters were
/// started in (the SDK's batch processors export from threads of their own).
#[derive(Debug, Clone)]
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let task = self.runtime.spawn(async move {
            let mut answer = tokio::time::timeout(EXPORT_TIMEOUT, http.execute(request)).await??;
            let mut body = Vec::new();
            while let Some(chunk) = tokio::time::timeout(EXPORT_TIMEOUT, answer.chunk()).await?? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                response = response.header(name, value);
            }
            Ok::<_, HttpError>(response.body(Bytes::from(body))?)
        });
        task.await?
    }
}
