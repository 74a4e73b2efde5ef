//! From TOML text to a [`Policy`]: parse with spans, deserialize each section on its own (so one
//! bad section does not hide the errors of the others), then check what serde cannot.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::duration::DurationStr;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::config::{
    BreakerConfig, Budget, ClassAction, ClassActions, DEFAULT_HOLDBACK, DEFAULT_RESUME, Holdback, Limits, Resume,
    RetryConfig, Timeouts,
};
use super::diagnostic::{Collector, PolicyError};
use super::schema::{
    BreakerSpec, ClassActionSpec, DrillFaultSpec, DrillSpec, HoldbackSpec, Layer, LimitsSpec, ProviderSpec, RetrySpec,
    RouteSpec, ServerSpec, TargetSpec, TimeoutsSpec,
};
use super::{InjectKind, LiveFault, Policy, ProviderPolicy, RoutePolicy, ServerSettings, TargetPolicy};
use crate::error::ErrorClass;
use crate::profile::{AuthScheme, ProviderProfile};
use crate::provider::Protocol;

const TOP_LEVEL: &str = "defaults, providers, routes, drill, server, state, otel";

pub(super) fn compile(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let mut c = Collector::new(file, text);
    if text.trim().is_empty() {
        c.error(&(0..0), "", "the policy is empty (a half-written file?): it needs at least one [routes.NAME]");
        return Err(PolicyError::Invalid(c.errors));
    }
    let (root, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        for e in syntax {
            c.error(&e.span().unwrap_or(0..0), "", e.message().trim().to_owned());
        }
        return Err(PolicyError::Invalid(c.errors));
    }
    compile_table(c, root.get_ref(), text)
}

/// Compiles a policy from an already parsed table (a file's root, or the `[policy]` table of a
/// drill file, whose diagnostics then carry the collector's key prefix).
pub(crate) fn compile_table(mut c: Collector<'_>, root: &DeTable<'_>, text: &str) -> Result<Policy, PolicyError> {
    let file = c.file;
    let mut defaults = Layer::default();
    let mut providers: Vec<(Spanned<String>, ProviderSpec)> = Vec::new();
    let mut routes: Vec<(Spanned<String>, RouteSpec)> = Vec::new();
    let mut drill = DrillSpec::default();
    let mut server = ServerSpec::default();
    let mut state = super::state::StateSpec::default();
    let mut otel = None;
    let mut routes_span = None;

    for (key, value) in root.iter() {
        let name: &str = key.get_ref();
        match name {
            "defaults" => defaults = section(&mut c, "defaults", value).unwrap_or_default(),
            "providers" => {
                for (n, v) in entries(&mut c, "providers", value) {
                    if let Some(spec) = section(&mut c, &format!("providers.{}", n.get_ref()), &v) {
                        providers.push((n, spec));
                    }
                }
            }
            "routes" => {
                routes_span = Some(key.span());
                for (n, v) in entries(&mut c, "routes", value) {
                    if let Some(spec) = section(&mut c, &format!("routes.{}", n.get_ref()), &v) {
                        routes.push((n, spec));
                    }
                }
            }
            "drill" => drill = section(&mut c, "drill", value).unwrap_or_default(),
            "server" => server = section(&mut c, "server", value).unwrap_or_default(),
            "state" => state = section(&mut c, "state", value).unwrap_or_default(),
            "otel" => otel = Some(section(&mut c, "otel", value).unwrap_or_default()),
            other => c.error(&key.span(), other, format!("unknown table `{other}`; expected one of: {TOP_LEVEL}")),
        }
    }
    let had_section_errors = !c.errors.is_empty();
    if routes.is_empty() && !had_section_errors {
        let span = routes_span.unwrap_or(0..0);
        c.error(&span, "routes", "the policy has no routes: add at least one [routes.NAME] with targets");
    }

    check_layer(&mut c, "defaults", &defaults);
    let compiled_providers = compile_providers(&mut c, &defaults, &providers, &routes);
    let compiled_routes = compile_routes(&mut c, &defaults, &compiled_providers, &providers, &routes);
    let drill_faults = compile_drill(&mut c, &drill, &compiled_providers);
    let route_names: Vec<&str> = compiled_routes.keys().map(String::as_str).collect();
    let server = compile_server(&mut c, server, &route_names);
    let state = super::state::compile(&mut c, state);
    let otel = otel.map(|spec| super::otel::compile(&mut c, spec));

    if !c.errors.is_empty() {
        // the policy's own problems first, then those of the files it names (key file)
        let own = c.file.to_owned();
        c.errors.sort_by_key(|d| (d.location.file != own, d.location.line, d.location.column));
        return Err(PolicyError::Invalid(c.errors));
    }
    c.warnings.sort_by_key(|d| (d.location.line, d.location.column));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    Ok(Policy {
        source: file.to_owned(),
        hash: format!("{:016x}", hasher.finish()),
        providers: compiled_providers,
        routes: compiled_routes,
        drill_faults,
        server,
        state,
        otel,
        warnings: c.warnings,
    })
}

/// `[server]`: limits checked, the key file and TLS files read.
fn compile_server(c: &mut Collector<'_>, spec: ServerSpec, routes: &[&str]) -> ServerSettings {
    let duration = |c: &mut Collector<'_>, key: &str, d: Option<Spanned<DurationStr>>| {
        let d = d?;
        if d.get_ref().get().is_zero() {
            c.error(&d.span(), format!("server.{key}"), "must be longer than zero");
        }
        Some(d.into_inner().get())
    };
    let at_least = |c: &mut Collector<'_>, key: &str, v: Option<Spanned<u64>>, min: u64| {
        let v = v?;
        if *v.get_ref() < min {
            c.error(&v.span(), format!("server.{key}"), format!("must be at least {min}"));
        }
        Some(v.into_inner())
    };
    let mut files = std::collections::hash_map::DefaultHasher::new();
    let (keys, keys_file) =
        super::client_keys::load(c, spec.api_keys_env.as_deref(), spec.keys_file.as_ref(), routes, &mut files);
    let tls = spec.tls.as_ref().and_then(|t| super::tls::load(c, t, &mut files));
    ServerSettings {
        header_read_timeout: duration(c, "header_read_timeout", spec.header_read_timeout),
        body_read_timeout: duration(c, "body_read_timeout", spec.body_read_timeout),
        keepalive_timeout: duration(c, "keepalive_timeout", spec.keepalive_timeout),
        write_timeout: duration(c, "write_timeout", spec.write_timeout),
        max_connections: at_least(c, "max_connections", spec.max_connections, 1),
        // no real request line and headers fit in less
        max_header_bytes: at_least(c, "max_header_bytes", spec.max_header_bytes, 1024),
        max_in_flight_per_key: at_least(c, "max_in_flight_per_key", spec.max_in_flight_per_key, 1),
        api_keys_env: spec.api_keys_env,
        listen: spec.listen,
        admin_listen: spec.admin_listen,
        max_body: spec.max_body,
        max_model_bytes: spec.max_model_bytes,
        max_messages: spec.max_messages,
        max_tools: spec.max_tools,
        keys_file,
        tls,
        client_keys: std::sync::Arc::new(keys),
        files_hash: files.finish(),
    }
}

/// The `name = { ... }` entries of a table of tables (`[providers.*]`, `[routes.*]`).
pub(crate) fn entries<'i>(
    c: &mut Collector<'_>,
    key: &str,
    value: &Spanned<DeValue<'i>>,
) -> Vec<(Spanned<String>, Spanned<DeValue<'i>>)> {
    match value.get_ref() {
        DeValue::Table(t) => {
            t.iter().map(|(k, v)| (Spanned::new(k.span(), k.get_ref().to_string()), v.clone())).collect()
        }
        other => {
            c.error(&value.span(), key, format!("expected a table of named entries, found {}", other.type_str()));
            Vec::new()
        }
    }
}

/// Deserializes one section; an error is recorded with the full key path and the section skipped.
pub(crate) fn section<T: DeserializeOwned>(
    c: &mut Collector<'_>,
    prefix: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<T> {
    let de = ValueDeserializer::from(value.clone());
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Some(v),
        Err(e) => {
            // `Spanned` fields show up as a private serde key in the path: hide it
            let path = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "")
                .replace("$__serde_spanned_private_value", "");
            let inner = e.into_inner();
            let mut key = prefix.to_owned();
            if !path.is_empty() && path != "." {
                key.push('.');
                key.push_str(&path);
            }
            let message = inner.message().trim().to_owned();
            // serde reports an unknown field at its parent: name the field itself in the key path
            if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next())
                && !key.ends_with(field)
            {
                key.push('.');
                key.push_str(field);
            }
            c.error(&inner.span().unwrap_or_else(|| value.span()), key, message);
            None
        }
    }
}

fn compile_providers(
    c: &mut Collector<'_>,
    defaults: &Layer,
    declared: &[(Spanned<String>, ProviderSpec)],
    routes: &[(Spanned<String>, RouteSpec)],
) -> BTreeMap<String, Arc<ProviderPolicy>> {
    let mut out = BTreeMap::new();
    for (name, spec) in declared {
        let key = format!("providers.{}", name.get_ref());
        check_layer(c, &key, &spec.layer());
        if let Some(p) = compile_provider(c, &key, name, spec, defaults) {
            out.insert(name.get_ref().clone(), Arc::new(p));
        }
    }
    // a target may name a built-in profile (`openai`, `anthropic`, ...) without declaring it
    for (_, route) in routes {
        for t in route.targets.get_ref() {
            let n = t.provider.get_ref();
            if !out.contains_key(n)
                && !declared.iter().any(|(d, _)| d.get_ref() == n)
                && ProviderProfile::builtin(n).is_some()
            {
                let spanned = Spanned::new(t.provider.span(), n.clone());
                if let Some(p) =
                    compile_provider(c, &format!("providers.{n}"), &spanned, &ProviderSpec::default(), defaults)
                {
                    out.insert(n.clone(), Arc::new(p));
                }
            }
        }
    }
    out
}

/// `profile` with the policy's model entries: fields set there override the catalog's; a model the
/// catalog does not know needs its context window and output limit.
fn with_models(
    c: &mut Collector<'_>,
    key: &str,
    mut profile: ProviderProfile,
    models: &BTreeMap<String, Spanned<crate::policy::schema::ModelSpec>>,
) -> ProviderProfile {
    for (model, spanned) in models {
        let spec = spanned.get_ref();
        let entry = match profile.models.get(model) {
            Some(known) => known.clone(),
            None => match (spec.context_window, spec.max_output_tokens) {
                (Some(context_window), Some(max_output_tokens)) => crate::profile::ModelProfile {
                    context_window,
                    max_output_tokens,
                    input_price: 0.0,
                    output_price: 0.0,
                    cached_input_price: None,
                    cache_write_price: None,
                    supports_prefill: None,
                    first_token: None,
                    effort_budgets: None,
                    accepts: None,
                    embedding_dimensions: None,
                },
                _ => {
                    c.error(
                        &spanned.span(),
                        format!("{key}.models.\"{model}\""),
                        format!(
                            "profile `{}` does not know model `{model}`: set `context_window` and `max_output_tokens`",
                            profile.name
                        ),
                    );
                    continue;
                }
            },
        };
        let mut entry = entry;
        if let Some(v) = spec.context_window {
            entry.context_window = v;
        }
        if let Some(v) = spec.max_output_tokens {
            entry.max_output_tokens = v;
        }
        for (name, price) in [
            ("input_price", spec.input_price),
            ("output_price", spec.output_price),
            ("cached_input_price", spec.cached_input_price),
            ("cache_write_price", spec.cache_write_price),
        ] {
            if price.is_some_and(|p| !(p.is_finite() && p >= 0.0)) {
                let key = format!("{key}.models.\"{model}\".{name}");
                c.error(&spanned.span(), key, "a price is a finite amount of 0 or more (USD per million tokens)");
            }
        }
        if let Some(v) = spec.input_price {
            entry.input_price = v;
        }
        if let Some(v) = spec.output_price {
            entry.output_price = v;
        }
        if spec.cached_input_price.is_some() {
            entry.cached_input_price = spec.cached_input_price;
        }
        if spec.cache_write_price.is_some() {
            entry.cache_write_price = spec.cache_write_price;
        }
        if spec.supports_prefill.is_some() {
            entry.supports_prefill = spec.supports_prefill;
        }
        if spec.first_token.is_some() {
            entry.first_token = spec.first_token;
        }
        if spec.embedding_dimensions.is_some() {
            entry.embedding_dimensions = spec.embedding_dimensions;
        }
        if spec.effort_budgets.is_some() {
            entry.effort_budgets.clone_from(&spec.effort_budgets);
        }
        if spec.accepts.is_some() {
            entry.accepts.clone_from(&spec.accepts);
        }
        profile.models.insert(model.clone(), entry);
    }
    profile
}

fn compile_provider(
    c: &mut Collector<'_>,
    key: &str,
    name: &Spanned<String>,
    spec: &ProviderSpec,
    defaults: &Layer,
) -> Option<ProviderPolicy> {
    let profile = match &spec.profile {
        Some(p) => match ProviderProfile::builtin(p.get_ref()) {
            Some(profile) => Some(profile),
            None => {
                c.error(
                    &p.span(),
                    format!("{key}.profile"),
                    format!("unknown profile `{}`; built-in profiles: {}", p.get_ref(), builtin_names()),
                );
                return None;
            }
        },
        None => ProviderProfile::builtin(name.get_ref()),
    };
    let Some(protocol) = spec.protocol.or(profile.as_ref().map(|p| p.protocol)) else {
        c.error(&name.span(), key, format!("provider `{}` needs `protocol = \"openai\"`, `\"openai_responses\"` or `\"anthropic\"` (no built-in profile has this name; or set `profile`)", name.get_ref()));
        return None;
    };
    // an OpenAI-wire profile's models are served by its Responses API too
    let same_models = |profile: Protocol, p: Protocol| profile == p || (profile == Protocol::Openai && p.is_openai());
    if let (Some(profile), Some(p)) = (&profile, spec.protocol)
        && !same_models(profile.protocol, p)
    {
        c.error(
            &name.span(),
            format!("{key}.protocol"),
            format!(
                "protocol `{}` contradicts profile `{}` (which speaks `{}`)",
                p.as_str(),
                profile.name,
                profile.protocol.as_str()
            ),
        );
    }
    let base_url = match (&spec.base_url, &profile) {
        (Some(u), _) => {
            let url = u.get_ref().trim_end_matches('/').to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                c.error(&u.span(), format!("{key}.base_url"), format!("`{url}` is not an http(s) URL"));
            }
            url
        }
        (None, Some(p)) => p.base_url.clone(),
        (None, None) => {
            c.error(
                &name.span(),
                format!("{key}.base_url"),
                "missing `base_url` (no built-in profile to take it from)",
            );
            return None;
        }
    };
    let api_key_env = spec
        .api_key_env
        .as_ref()
        .map(|s| s.get_ref().clone())
        .or_else(|| profile.as_ref().and_then(|p| p.api_key_env.clone()));
    // a key is needed when the policy or profile says how to send one; a local server needs none
    let default_auth = match protocol {
        Protocol::Anthropic => AuthScheme::XApiKey,
        _ => AuthScheme::Bearer,
    };
    let auth = spec.auth.or(profile.as_ref().map(|p| p.auth)).unwrap_or(if api_key_env.is_some() {
        default_auth
    } else {
        AuthScheme::None
    });
    if auth != AuthScheme::None {
        match &api_key_env {
            Some(var) if std::env::var(var).map_or(true, |v| v.trim().is_empty()) => {
                let span = spec.api_key_env.as_ref().map_or_else(|| name.span(), |s| s.span());
                c.warn(
                    &span,
                    format!("{key}.api_key_env"),
                    format!("environment variable `{var}` is not set: requests to `{}` will fail with `authentication` and fail over", name.get_ref()),
                );
            }
            Some(_) => {}
            None => c.error(&name.span(), format!("{key}.api_key_env"), "this provider sends a key: name the variable that holds it with `api_key_env`, or set `auth = \"none\"`"),
        }
    }
    let mut headers: Vec<(String, String)> =
        profile.as_ref().map(|p| p.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
    for (k, v) in &spec.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    let profile = if spec.models.is_empty() {
        profile
    } else {
        let base = profile.map(|p| (*p).clone()).unwrap_or_else(|| ProviderProfile {
            name: name.get_ref().clone(),
            protocol,
            base_url: base_url.clone(),
            auth,
            api_key_env: api_key_env.clone(),
            headers: BTreeMap::new(),
            status_page: None,
            models: BTreeMap::new(),
        });
        Some(Arc::new(with_models(c, key, base, &spec.models)))
    };
    let layers = [Some(&spec.layer()), Some(defaults)];
    Some(ProviderPolicy {
        name: name.get_ref().clone(),
        protocol,
        base_url,
        api_key_env,
        auth,
        headers,
        profile,
        limits: merge_limits(&layers),
        breaker: BreakerConfig { probe: spec.probe.unwrap_or_default(), ..merge_breaker(&layers) },
        connect_timeout: merge_timeouts(&layers).connect,
        budget: budget(c, key, spec.budget.as_ref()),
        status_page: status_page(c, key, name, spec),
        caller_headers: caller_headers(c, key, spec),
    })
}

/// A provider's `forward_headers` (each one of the caller headers a gateway carries) and
/// `drop_betas` (names, or prefixes ending in `*`).
fn caller_headers(c: &mut Collector<'_>, key: &str, spec: &ProviderSpec) -> crate::provider::CallerHeaders {
    use crate::provider::{CALLER_HEADERS, CallerHeaders};
    let mut rules = CallerHeaders::default();
    if let Some(forward) = &spec.forward_headers {
        for h in forward.get_ref() {
            if !CALLER_HEADERS.iter().any(|k| k.eq_ignore_ascii_case(h)) {
                c.error(
                    &forward.span(),
                    format!("{key}.forward_headers"),
                    format!("`{h}` is not a caller header the gateway forwards: one of {}", CALLER_HEADERS.join(", ")),
                );
            }
        }
        rules.forward = forward.get_ref().iter().map(|h| h.to_ascii_lowercase()).collect();
    }
    if let Some(drop) = &spec.drop_betas {
        for b in drop.get_ref() {
            if b.trim().is_empty() || b.trim_end_matches('*').contains('*') {
                c.error(
                    &drop.span(),
                    format!("{key}.drop_betas"),
                    format!("`{b}` is not a beta name or a prefix ending in `*`"),
                );
            }
        }
        rules.drop_betas.clone_from(drop.get_ref());
    }
    rules
}

/// The shortest gap between two reads of a status page.
const MIN_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// The longest gap between two reads of a status page.
const MAX_STATUS_INTERVAL: Duration = Duration::from_secs(86_400);

/// A provider's `status_page`, `status_interval` and `on_incident`, checked: an http(s) address
/// (or `true`, for the profile's), read at most once a second.
fn status_page(
    c: &mut Collector<'_>,
    key: &str,
    name: &Spanned<String>,
    spec: &ProviderSpec,
) -> Option<super::StatusPageConfig> {
    use super::schema::StatusPageSpec;
    let enabled = spec.status_page.as_ref().filter(|p| !matches!(p.get_ref(), StatusPageSpec::Enabled(false)));
    let Some(page) = enabled else {
        let set = [
            (spec.status_interval.as_ref().map(Spanned::span), "status_interval"),
            (spec.on_incident.as_ref().map(Spanned::span), "on_incident"),
        ];
        for (span, what) in set {
            if let Some(span) = span {
                c.warn(&span, format!("{key}.{what}"), "has no effect without `status_page`");
            }
        }
        return None;
    };
    let url = match page.get_ref() {
        StatusPageSpec::Enabled(_) => {
            let profile = spec.profile.as_ref().map_or_else(|| name.get_ref().as_str(), |p| p.get_ref().as_str());
            match ProviderProfile::builtin(profile).and_then(|p| p.status_page.clone()) {
                Some(url) => url,
                None => {
                    c.error(
                        &page.span(),
                        format!("{key}.status_page"),
                        format!("the profile `{profile}` names no status page: write its address (`status_page = \"https://status.example.com\"`)"),
                    );
                    return None;
                }
            }
        }
        StatusPageSpec::Url(url) => url.trim().to_owned(),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        c.error(&page.span(), format!("{key}.status_page"), format!("`{url}` is not an http(s) URL"));
        return None;
    }
    // a public page needs neither: and the address is shown in /admin/state and events
    if url.contains('@') || url.contains('?') {
        c.error(
            &page.span(),
            format!("{key}.status_page"),
            "a status page address carries no credentials and no query: write the page's public address",
        );
        return None;
    }
    let interval = spec.status_interval.as_ref().map_or(super::DEFAULT_STATUS_INTERVAL, |d| d.get_ref().get());
    if !(MIN_STATUS_INTERVAL..=MAX_STATUS_INTERVAL).contains(&interval) {
        let span = spec.status_interval.as_ref().map_or_else(|| page.span(), Spanned::span);
        c.error(
            &span,
            format!("{key}.status_interval"),
            "a status page is read at most once a second and at least once a day (\"1s\" to \"1d\"; \"60s\" by default)",
        );
        return None;
    }
    Some(super::StatusPageConfig {
        url: crate::status_page::summary_url(&url),
        interval,
        on_incident: spec.on_incident.as_ref().map_or_else(Default::default, |o| *o.get_ref()),
    })
}

/// A `budget = { usd, per }`, checked: a positive amount, a window of a minute or more.
pub(crate) fn budget(
    c: &mut Collector<'_>,
    key: &str,
    spec: Option<&Spanned<super::schema::BudgetSpec>>,
) -> Option<Budget> {
    let spec = spec?;
    let b = spec.get_ref();
    if !(b.usd.is_finite() && b.usd > 0.0) {
        c.error(&spec.span(), format!("{key}.budget.usd"), format!("`usd` must be a positive amount, not {}", b.usd));
        return None;
    }
    if b.per.get() < std::time::Duration::from_secs(60) || b.per.get() > std::time::Duration::from_secs(400 * 86_400) {
        c.error(
            &spec.span(),
            format!("{key}.budget.per"),
            "`per` must be a minute or longer, and 400 days at most (\"1h\", \"1d\", \"30d\")",
        );
        return None;
    }
    Some(Budget { usd: b.usd, per: b.per.get() })
}

/// The most hedged attempts a route may start for one request.
const MAX_HEDGES: u32 = 3;

/// The longest `hedge.after`: longer than any request should wait for its first token.
const MAX_HEDGE_AFTER: Duration = Duration::from_secs(3600);

/// A `hedge = { after, max }`, checked: `after` a duration from a millisecond to an hour, or a
/// percentile `p50` to `p99`; `max` from 1 to 3 (a warning when the route has fewer targets to
/// hedge with).
fn hedge(
    c: &mut Collector<'_>,
    key: &str,
    spec: Option<&Spanned<super::schema::HedgeSpec>>,
    targets: usize,
) -> Option<super::Hedge> {
    let spec = spec?;
    let h = spec.get_ref();
    let text = h.after.get_ref().trim();
    let after = match text.strip_prefix('p').map(str::parse::<u8>) {
        Some(Ok(p)) if (50..=99).contains(&p) => Some(super::HedgeAfter::Percentile(p)),
        Some(_) => None,
        None => crate::duration::parse_duration(text)
            .ok()
            .filter(|d| (Duration::from_millis(1)..=MAX_HEDGE_AFTER).contains(d))
            .map(super::HedgeAfter::Fixed),
    };
    let Some(after) = after else {
        c.error(
            &h.after.span(),
            format!("{key}.hedge.after"),
            format!("`{text}` is neither a duration from 1ms to 1h (\"2s\", \"750ms\") nor a percentile of the time to first token (\"p50\" to \"p99\")"),
        );
        return None;
    };
    let max = h.max.as_ref().map_or(1, |m| *m.get_ref());
    if !(1..=MAX_HEDGES).contains(&max) {
        let span = h.max.as_ref().map_or_else(|| spec.span(), Spanned::span);
        c.error(&span, format!("{key}.hedge.max"), format!("`max` must be 1 to {MAX_HEDGES}, not {max}"));
        return None;
    }
    if targets < 2 {
        c.error(
            &spec.span(),
            format!("{key}.hedge"),
            "a hedge starts the next target: the route needs two targets or more",
        );
        return None;
    }
    if max as usize >= targets {
        c.warn(
            &spec.span(),
            format!("{key}.hedge.max"),
            format!("the route has {targets} targets: at most {} hedges can start", targets - 1),
        );
    }
    Some(super::Hedge { after, max })
}

fn builtin_names() -> String {
    crate::profile::builtins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn compile_routes(
    c: &mut Collector<'_>,
    defaults: &Layer,
    providers: &BTreeMap<String, Arc<ProviderPolicy>>,
    provider_specs: &[(Spanned<String>, ProviderSpec)],
    routes: &[(Spanned<String>, RouteSpec)],
) -> BTreeMap<String, Arc<RoutePolicy>> {
    let route_names: BTreeSet<&str> = routes.iter().map(|(n, _)| n.get_ref().as_str()).collect();
    let mut out = BTreeMap::new();
    // a target's breaker and limits live in one node shared by every route naming it: two routes
    // must not say different things about it (one of them would be ignored without a word)
    let mut shared: BTreeMap<(String, String), (String, crate::policy::Limits, crate::policy::BreakerConfig)> =
        BTreeMap::new();
    for (name, spec) in routes {
        let key = format!("routes.{}", name.get_ref());
        let route_layer = spec.layer();
        check_layer(c, &key, &route_layer);
        if spec.targets.get_ref().is_empty() {
            c.error(
                &spec.targets.span(),
                format!("{key}.targets"),
                "a route needs at least one target: `targets = [{ provider = \"...\", model = \"...\" }]`",
            );
        }
        // a route's `holdback` is for its targets whose lists hold back: its own list, or theirs
        let mut route_list = spec.resume.as_ref().map_or(DEFAULT_RESUME.to_vec(), |l| l.get_ref().clone());
        let targets_hold = spec
            .targets
            .get_ref()
            .iter()
            .any(|t| t.resume.as_ref().is_some_and(|l| l.get_ref().contains(&Resume::Holdback)));
        if targets_hold && !route_list.contains(&Resume::Holdback) {
            route_list.push(Resume::Holdback);
        }
        check_resume(c, &key, spec.resume.as_ref(), spec.holdback.as_ref(), &route_list);
        let mut targets = Vec::new();
        for (i, t) in spec.targets.get_ref().iter().enumerate() {
            let tkey = format!("{key}.targets[{i}]");
            check_layer(c, &tkey, &t.layer());
            if let Some(mut target) = compile_target(c, &tkey, t, &route_layer, defaults, providers, provider_specs) {
                let id = (target.provider.clone(), target.model.clone());
                match shared.get(&id) {
                    Some((other, limits, breaker)) if *limits != target.limits || *breaker != target.breaker => {
                        let what = if *limits == target.limits { "breaker" } else { "limits" };
                        c.error(
                            &t.model.span(),
                            &tkey,
                            format!(
                                "`{}/{}` is also a target of `{other}`, with other {what}: a target's breaker and limits are shared by every route that names it, so give it the same in each (or set them once on the provider)",
                                id.0, id.1
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        shared.insert(id, (tkey.clone(), target.limits, target.breaker));
                    }
                }
                // the target's own `unsupported`, else its route's
                target.unsupported = t.unsupported.or(spec.unsupported).unwrap_or_default();
                (target.resume, target.holdback) = compile_resume(c, &tkey, spec, t);
                targets.push(target);
            }
        }
        // a failover must not change the length of the vectors a caller stores
        let dims: BTreeSet<(u32, String)> = targets
            .iter()
            .filter_map(|t: &TargetPolicy| {
                t.model_profile.as_ref().and_then(|m| m.embedding_dimensions).map(|d| (d, t.model.clone()))
            })
            .collect();
        if dims.iter().map(|(d, _)| d).collect::<BTreeSet<_>>().len() > 1 {
            let listed: Vec<String> = dims.iter().map(|(d, m)| format!("`{m}` {d}")).collect();
            c.error(
                &spec.targets.span(),
                format!("{key}.targets"),
                format!(
                    "the route mixes embedding models of different dimensions ({}): a failover would change the length of the vectors; give each length its own route",
                    listed.join(", ")
                ),
            );
        }
        if dims.len() > 1 && dims.iter().map(|(d, _)| d).collect::<BTreeSet<_>>().len() == 1 {
            let models: Vec<&str> = dims.iter().map(|(_, m)| m.as_str()).collect();
            c.warn(
                &spec.targets.span(),
                format!("{key}.targets"),
                format!(
                    "the route fails over between embedding models ({}): their vectors have the same length but are not comparable, so a caller's store may mix them",
                    models.join(", ")
                ),
            );
        }
        let mut actions = ClassActions::default();
        for (class_name, over) in &spec.on {
            match class_name.get_ref().parse::<ErrorClass>() {
                Ok(class) => actions.set(class, apply_override(ClassAction::default_for(class), *over)),
                Err(e) => c.error(&class_name.span(), format!("{key}.on.{}", class_name.get_ref()), e.to_string()),
            }
        }
        if let Some(overflow) = &spec.on_context_overflow {
            let target = overflow.get_ref();
            if target == name.get_ref() {
                c.error(&overflow.span(), format!("{key}.on_context_overflow"), "a route cannot overflow into itself");
            } else if !route_names.contains(target.as_str()) {
                c.error(
                    &overflow.span(),
                    format!("{key}.on_context_overflow"),
                    format!("unknown route `{target}`; routes: {}", join(&route_names)),
                );
            }
        }
        if spec.cache_affinity == Some(true) && spec.strategy == super::schema::Strategy::Priority {
            c.warn(
                &name.span(),
                format!("{key}.cache_affinity"),
                "has no effect on a `priority` route, which already sends every request to its first healthy target",
            );
        }
        let total = merge_timeouts(&[Some(&route_layer), Some(defaults)]).total;
        out.insert(
            name.get_ref().clone(),
            Arc::new(RoutePolicy {
                name: name.get_ref().clone(),
                strategy: spec.strategy,
                targets,
                actions,
                on_context_overflow: spec.on_context_overflow.as_ref().map(|s| s.get_ref().clone()),
                total_timeout: total,
                budget: budget(c, &key, spec.budget.as_ref()),
                cache_affinity: spec.cache_affinity.unwrap_or(false),
                hedge: hedge(c, &key, spec.hedge.as_ref(), spec.targets.get_ref().len()),
            }),
        );
    }
    out
}

fn apply_override(mut action: ClassAction, over: ClassActionSpec) -> ClassAction {
    use super::config::BreakerEffect;
    if let Some(r) = over.retry {
        action.retry = r;
    }
    if let Some(f) = over.failover {
        action.failover = f;
    }
    match over.breaker {
        Some(false) => action.breaker = BreakerEffect::None,
        Some(true) if action.breaker == BreakerEffect::None => action.breaker = BreakerEffect::CountTarget,
        _ => {}
    }
    action
}

fn compile_target(
    c: &mut Collector<'_>,
    key: &str,
    t: &TargetSpec,
    route: &Layer,
    defaults: &Layer,
    providers: &BTreeMap<String, Arc<ProviderPolicy>>,
    provider_specs: &[(Spanned<String>, ProviderSpec)],
) -> Option<TargetPolicy> {
    let pname = t.provider.get_ref();
    let Some(provider) = providers.get(pname) else {
        // a declared provider that failed to compile already has its error
        if !provider_specs.iter().any(|(n, _)| n.get_ref() == pname) {
            let known: BTreeSet<&str> = providers.keys().map(String::as_str).collect();
            c.error(
                &t.provider.span(),
                format!("{key}.provider"),
                format!(
                    "unknown provider `{pname}`; declared: {} (built-in profiles may be named directly: {})",
                    join(&known),
                    builtin_names()
                ),
            );
        }
        return None;
    };
    let model = t.model.get_ref().trim();
    if model.is_empty() {
        c.error(&t.model.span(), format!("{key}.model"), "empty model name");
        return None;
    }
    let model_profile = provider.profile.as_ref().and_then(|p| p.model(model)).cloned();
    let provider_spec =
        provider_specs.iter().find(|(n, _)| n.get_ref() == pname).map(|(_, s)| s.layer()).unwrap_or_default();
    let target_layer = t.layer();
    let layers = [Some(&target_layer), Some(route), Some(&provider_spec), Some(defaults)];
    let mut timeouts = merge_timeouts(&layers);
    // a reasoning model's profile may raise the first-token timeout unless a specific level set it
    let specific_first_token = [&target_layer, route, &provider_spec]
        .iter()
        .any(|l| l.timeouts.as_ref().is_some_and(|t| t.first_token.is_some()));
    if let (false, Some(ft)) = (specific_first_token, model_profile.as_ref().and_then(|m| m.first_token())) {
        timeouts.first_token = timeouts.first_token.max(ft);
    }
    let limits = merge_limits(&[Some(&target_layer), Some(route)]);
    let weight = t.weight.as_ref().map_or(1, |w| *w.get_ref());
    let target = TargetPolicy {
        provider: pname.clone(),
        model: model.to_owned(),
        weight,
        retry: merge_retry(&layers),
        timeouts,
        breaker: BreakerConfig { probe: provider.breaker.probe, ..merge_breaker(&layers) },
        limits,
        unsupported: t.unsupported.unwrap_or_default(),
        resume: crate::policy::DEFAULT_RESUME.to_vec(),
        holdback: None,
        model_profile,
    };
    // a request with an empty prompt and the default output reservation must fit the token budget
    let need = target.token_need(0, None);
    // where each tpm was written: the target (or its route), else the provider (or the defaults)
    let target_at = match (&t.limits, &route.limits) {
        (Some(l), _) => Some((l.span(), key.to_owned())),
        (None, Some(l)) => Some((l.span(), key.rsplit_once(".targets").map_or(key, |(r, _)| r).to_owned())),
        _ => None,
    };
    let provider_at = match (&provider_spec.limits, &defaults.limits) {
        (Some(l), _) if l.get_ref().tpm.is_some() => Some((l.span(), format!("providers.{pname}"))),
        (_, Some(l)) => Some((l.span(), "defaults".to_owned())),
        _ => None,
    };
    for (limits, at, level) in [(&limits, target_at, "target"), (&provider.limits, provider_at, "provider")] {
        if let Some(tpm) = limits.tpm
            && u64::from(tpm) < need
        {
            let (span, at_key) = at.unwrap_or_else(|| (t.provider.span(), key.to_owned()));
            c.error(
                &span,
                format!("{at_key}.limits.tpm"),
                format!("{level} tpm {tpm} is smaller than one request to `{model}` may need ({need} tokens: the model's output reservation); raise tpm or set max_tokens on requests"),
            );
        }
    }
    Some(target)
}

fn compile_drill(
    c: &mut Collector<'_>,
    drill: &DrillSpec,
    providers: &BTreeMap<String, Arc<ProviderPolicy>>,
) -> Vec<LiveFault> {
    let mut out = Vec::new();
    for (i, f) in drill.faults.iter().enumerate() {
        if !cfg!(feature = "sim") {
            // a fault is played by the in-process simulator
            let message = "live fault injection needs switchyard's `sim` feature: build it with `--features sim`";
            c.error(&f.provider.span(), format!("drill.faults[{i}]"), message);
            continue;
        }
        if let Some(fault) = compile_fault(c, &format!("drill.faults[{i}]"), f, providers) {
            out.push(fault);
        }
    }
    out
}

/// One fault written as a `[[drill.faults]]` entry is (TOML text: the body of the gateway's
/// `POST /admin/faults`, converted from JSON), checked against `policy`'s providers with the same
/// rules and messages.
#[cfg(all(feature = "gateway", feature = "sim"))]
pub(crate) fn fault_from_toml(policy: &Policy, text: &str) -> Result<LiveFault, PolicyError> {
    let mut c = Collector::new("fault", text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            c.error(&e.span().unwrap_or(0..0), "", e.message().trim().to_owned());
            return Err(PolicyError::Invalid(c.errors));
        }
    };
    let value = Spanned::new(root.span(), DeValue::Table(root.get_ref().clone()));
    let fault = section::<DrillFaultSpec>(&mut c, "fault", &value)
        .and_then(|spec| compile_fault(&mut c, "fault", &spec, &policy.providers));
    match fault {
        Some(f) if c.errors.is_empty() => Ok(f),
        _ => Err(PolicyError::Invalid(c.errors)),
    }
}

fn compile_fault(
    c: &mut Collector<'_>,
    key: &str,
    f: &DrillFaultSpec,
    providers: &BTreeMap<String, Arc<ProviderPolicy>>,
) -> Option<LiveFault> {
    let mut ok = true;
    if !providers.contains_key(f.provider.get_ref()) {
        c.error(&f.provider.span(), format!("{key}.provider"), format!("unknown provider `{}`", f.provider.get_ref()));
        ok = false;
    }
    let inject = InjectKind::parse(f.inject.get_ref());
    if inject.is_none() {
        c.error(&f.inject.span(), format!("{key}.inject"), format!("unknown fault `{}`: use an error class (server_error, overloaded, rate_limited, ...) or latency, slow_first_token, stall, cut", f.inject.get_ref()));
        ok = false;
    }
    let rate = f.rate.as_ref().map_or(1.0, |r| *r.get_ref());
    if !(0.0..=1.0).contains(&rate) {
        let span = f.rate.as_ref().map_or_else(|| f.inject.span(), |r| r.span());
        c.error(&span, format!("{key}.rate"), format!("rate must be between 0 and 1, found {rate}"));
        ok = false;
    }
    if matches!(inject, Some(InjectKind::Latency | InjectKind::SlowFirstToken | InjectKind::Stall)) && f.delay.is_none()
    {
        c.error(&f.inject.span(), format!("{key}.delay"), format!("`{}` needs `delay = \"...\"`", f.inject.get_ref()));
        ok = false;
    }
    let until = match &f.until {
        Some(u) => match parse_until(u.get_ref()) {
            Some(t) => Some(t),
            None => {
                c.error(
                    &u.span(),
                    format!("{key}.until"),
                    "until must be a date-time with an offset, e.g. 2026-12-01T12:00:00Z",
                );
                ok = false;
                None
            }
        },
        None => None,
    };
    let inject = inject?;
    ok.then(|| LiveFault {
        provider: f.provider.get_ref().clone(),
        model: f.model.clone(),
        inject,
        rate,
        count: f.count,
        duration: f.duration.map(|d| d.get()),
        until,
        retry_after: f.retry_after.map(|d| d.get()),
        delay: f.delay.map(|d| d.get()),
        after_tokens: f.after_tokens,
    })
}

/// `until` as a TOML date-time or an RFC 3339 string; it must carry an offset (`Z`, `+02:00`).
fn parse_until(value: &toml::Value) -> Option<SystemTime> {
    let dt = match value {
        toml::Value::Datetime(dt) => *dt,
        toml::Value::String(s) => s.parse::<toml::value::Datetime>().ok()?,
        _ => return None,
    };
    let (date, time, offset) = (dt.date?, dt.time?, dt.offset?);
    let offset_minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => i64::from(minutes),
    };
    let days = days_from_civil(i64::from(date.year), i64::from(date.month), i64::from(date.day));
    let secs = days * 86_400 + i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second)
        - offset_minutes * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(u64::from(time.nanosecond)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn join(names: &BTreeSet<&str>) -> String {
    if names.is_empty() { "(none)".into() } else { names.iter().copied().collect::<Vec<_>>().join(", ") }
}

/// Value checks that apply to a level's tables wherever they appear.
fn check_layer(c: &mut Collector<'_>, key: &str, layer: &Layer) {
    if let Some(r) = &layer.retry
        && let Some(m) = &r.max_attempts
        && *m.get_ref() == 0
    {
        c.error(
            &m.span(),
            format!("{key}.retry.max_attempts"),
            "max_attempts counts the first attempt: it must be at least 1",
        );
    }
    if let Some(b) = &layer.breaker {
        if let Some(n) = &b.consecutive_failures
            && *n.get_ref() == 0
        {
            c.error(&n.span(), format!("{key}.breaker.consecutive_failures"), "must be at least 1");
        }
        if let (Some(cd), Some(max)) = (b.cooldown, b.max_cooldown)
            && cd.get() > max.get()
        {
            let span = b.consecutive_failures.as_ref().map_or(0..0, |s| s.span());
            c.warn(
                &span,
                format!("{key}.breaker.max_cooldown"),
                "max_cooldown is shorter than cooldown: cooldown will not grow",
            );
        }
    }
    if let Some(l) = &layer.limits {
        for (name, v) in
            [("rpm", &l.get_ref().rpm), ("tpm", &l.get_ref().tpm), ("concurrency", &l.get_ref().concurrency)]
        {
            if let Some(v) = v
                && *v.get_ref() == 0
            {
                c.error(&v.span(), format!("{key}.limits.{name}"), "must be at least 1 (leave it out for no limit)");
            }
        }
    }
}

fn pick<T: Copy>(layers: &[Option<&Layer>], get: impl Fn(&Layer) -> Option<T>) -> Option<T> {
    layers.iter().flatten().find_map(|l| get(l))
}

fn merge_retry(layers: &[Option<&Layer>]) -> RetryConfig {
    let d = RetryConfig::default();
    let f = |g: fn(&RetrySpec) -> Option<Duration>| pick(layers, |l| l.retry.as_ref().and_then(g));
    RetryConfig {
        max_attempts: pick(layers, |l| l.retry.as_ref().and_then(|r| r.max_attempts.as_ref().map(|m| *m.get_ref())))
            .unwrap_or(d.max_attempts)
            .max(1),
        base: f(|r| r.base.map(|x| x.get())).unwrap_or(d.base),
        max: f(|r| r.max.map(|x| x.get())).unwrap_or(d.max),
        retry_after_cap: f(|r| r.retry_after_cap.map(|x| x.get())).unwrap_or(d.retry_after_cap),
    }
}

fn merge_timeouts(layers: &[Option<&Layer>]) -> Timeouts {
    let d = Timeouts::default();
    let f = |g: fn(&TimeoutsSpec) -> Option<Duration>| pick(layers, |l| l.timeouts.as_ref().and_then(g));
    Timeouts {
        connect: f(|t| t.connect.map(|x| x.get())).unwrap_or(d.connect),
        first_token: f(|t| t.first_token.map(|x| x.get())).unwrap_or(d.first_token),
        idle: f(|t| t.idle.map(|x| x.get())).unwrap_or(d.idle),
        attempt: f(|t| t.attempt.map(|x| x.get())).unwrap_or(d.attempt),
        total: f(|t| t.total.map(|x| x.get())).unwrap_or(d.total),
    }
}

fn merge_breaker(layers: &[Option<&Layer>]) -> BreakerConfig {
    let d = BreakerConfig::default();
    let f = |g: fn(&BreakerSpec) -> Option<Duration>| pick(layers, |l| l.breaker.as_ref().and_then(g));
    let cooldown = f(|b| b.cooldown.map(|x| x.get())).unwrap_or(d.cooldown);
    BreakerConfig {
        consecutive_failures: pick(layers, |l| {
            l.breaker.as_ref().and_then(|b| b.consecutive_failures.as_ref().map(|n| *n.get_ref()))
        })
        .unwrap_or(d.consecutive_failures)
        .max(1),
        cooldown,
        max_cooldown: f(|b| b.max_cooldown.map(|x| x.get())).unwrap_or(d.max_cooldown.max(cooldown)),
        probe: d.probe,
    }
}

fn merge_limits(layers: &[Option<&Layer>]) -> Limits {
    let f = |g: fn(&LimitsSpec) -> Option<u32>| pick(layers, |l| l.limits.as_ref().and_then(|s| g(s.get_ref())));
    Limits {
        rpm: f(|l| l.rpm.as_ref().map(|v| *v.get_ref())),
        tpm: f(|l| l.tpm.as_ref().map(|v| *v.get_ref())),
        concurrency: f(|l| l.concurrency.as_ref().map(|v| *v.get_ref())),
    }
}

/// A target's `resume` list and `holdback` window: its own, else its route's, else the defaults.
/// What the route itself writes is checked once, by [`check_resume`] on the route.
fn compile_resume(
    c: &mut Collector,
    target_key: &str,
    route: &RouteSpec,
    t: &TargetSpec,
) -> (Vec<Resume>, Option<Holdback>) {
    let list = t.resume.as_ref().or(route.resume.as_ref()).map_or(DEFAULT_RESUME.to_vec(), |l| l.get_ref().clone());
    let own = check_resume(c, target_key, t.resume.as_ref(), t.holdback.as_ref(), &list);
    let window = match (&t.holdback, &route.holdback) {
        (Some(_), _) => own,
        // the route's window, for a target whose list holds back (checked with the route)
        (None, Some(h)) => holdback_window(h.get_ref()).filter(|_| list.contains(&Resume::Holdback)),
        (None, None) => list.contains(&Resume::Holdback).then_some(DEFAULT_HOLDBACK),
    };
    (list, window)
}

/// Checks one level's (a route's or a target's) `resume` list and `holdback` window; `list` is
/// the list in force there. A list that repeats a strategy or puts `none` beside another, and a
/// `holdback` that `list` does not ask for (or of 0, or a word other than `"all"`), are errors.
fn check_resume(
    c: &mut Collector,
    key: &str,
    written: Option<&Spanned<Vec<Resume>>>,
    holdback: Option<&Spanned<HoldbackSpec>>,
    list: &[Resume],
) -> Option<Holdback> {
    if let Some(l) = written {
        let (items, at, k) = (l.get_ref(), l.span(), format!("{key}.resume"));
        for (i, r) in items.iter().enumerate() {
            if items[..i].contains(r) {
                c.error(&at, k.clone(), format!("`{}` is listed twice", r.as_str()));
            }
        }
        if items.contains(&Resume::None) && items.len() > 1 {
            c.error(
                &at,
                k.clone(),
                "`none` ends the stream with its error: it cannot be listed with other strategies \
                 (`[\"holdback\"]` alone holds back, then ends with the error)",
            );
        }
        if items.is_empty() {
            c.error(&at, k, "an empty list: write `resume = [\"none\"]` to end the stream with its error");
        }
    }
    let h = holdback?;
    let k = format!("{key}.holdback");
    if !list.contains(&Resume::Holdback) {
        c.error(&h.span(), k, "`holdback` is set but `resume` does not list \"holdback\"");
        return None;
    }
    let window = holdback_window(h.get_ref());
    match h.get_ref() {
        HoldbackSpec::Events(0) => {
            c.error(&h.span(), k, "a holdback of 0 holds nothing back: leave `holdback` out of `resume` instead")
        }
        HoldbackSpec::Word(w) if window.is_none() => {
            c.error(&h.span(), k, format!("`{w}`: expected a number of content events or \"all\""))
        }
        _ => {}
    }
    window
}

fn holdback_window(h: &HoldbackSpec) -> Option<Holdback> {
    match h {
        HoldbackSpec::Events(0) => None,
        HoldbackSpec::Events(n) => Some(Holdback::Events(*n)),
        HoldbackSpec::Word(w) if w == "all" => Some(Holdback::All),
        HoldbackSpec::Word(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[defaults]
retry    = { max_attempts = 3, base = "500ms", max = "8s", retry_after_cap = "60s" }
timeouts = { connect = "5s", first_token = "10s", idle = "30s", attempt = "60s", total = "120s" }
breaker  = { consecutive_failures = 5, cooldown = "10s", max_cooldown = "40s" }

[providers.openai]
api_key_env = "SWITCHYARD_TEST_UNSET_KEY_1"
limits = { rpm = 500, tpm = 150000, concurrency = 64 }

[providers.anthropic]
api_key_env = "SWITCHYARD_TEST_UNSET_KEY_2"
timeouts = { first_token = "20s" }

[providers.local]
protocol = "openai"
base_url = "http://127.0.0.1:8000/v1/"

[routes.chat]
strategy = "priority"
targets = [
  { provider = "openai",    model = "gpt-4o", retry = { max_attempts = 2 } },
  { provider = "openai",    model = "gpt-4o-mini" },
  { provider = "anthropic", model = "claude-sonnet-4-5" },
]
on_context_overflow = "long"

[routes.chat.on.content_filtered]
failover = true

[routes.long]
targets = [{ provider = "anthropic", model = "claude-sonnet-4-5" }]

[[drill.faults]]
provider = "openai"
inject = "server_error"
rate = 1.0
until = "2026-12-01T12:00:00Z"
"#;

    #[test]
    fn a_good_policy_compiles_with_levels_merged() {
        let p = compile("p.toml", GOOD).unwrap();
        let chat = p.route("chat").unwrap();
        assert_eq!(chat.targets.len(), 3);
        assert_eq!(chat.targets[0].retry.max_attempts, 2);
        assert_eq!(chat.targets[1].retry.max_attempts, 3);
        assert_eq!(chat.targets[2].timeouts.first_token, Duration::from_secs(20));
        assert_eq!(chat.targets[0].timeouts.first_token, Duration::from_secs(10));
        assert!(chat.actions.get(ErrorClass::ContentFiltered).failover);
        assert_eq!(chat.on_context_overflow.as_deref(), Some("long"));
        assert_eq!(p.provider("local").unwrap().base_url, "http://127.0.0.1:8000/v1");
        assert_eq!(p.provider("openai").unwrap().limits.tpm, Some(150_000));
        assert_eq!(p.provider("anthropic").unwrap().protocol, Protocol::Anthropic);
        assert_eq!(p.drill_faults.len(), 1);
        assert_eq!(p.drill_faults[0].inject, InjectKind::Error(ErrorClass::ServerError));
        assert_eq!(p.drill_faults[0].until, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400)));
        let offset = toml::Value::String("2026-12-01T14:00:00+02:00".into());
        assert_eq!(parse_until(&offset), p.drill_faults[0].until);
        assert_eq!(parse_until(&toml::Value::String("2026-12-01T12:00:00".into())), None);
        // unset key variables are warnings, not errors
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(p.warnings[0].message.contains("SWITCHYARD_TEST_UNSET_KEY_1"));
    }

    fn errors(text: &str) -> Vec<String> {
        match compile("bad.toml", text) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn resume_lists_and_holdback_windows_are_checked_and_inherited() {
        let base = "[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://x\"\n";
        let ok = compile(
            "ok.toml",
            &format!(
                "{base}[routes.a]\nresume = [\"holdback\", \"instructed\"]\nholdback = \"all\"\n\
                 targets = [{{ provider = \"local\", model = \"m\" }}, {{ provider = \"local\", model = \"n\", resume = [\"none\"] }}]\n\
                 [routes.b]\ntargets = [{{ provider = \"local\", model = \"m\" }}]\n"
            ),
        )
        .unwrap();
        let a = ok.route("a").unwrap();
        assert_eq!(a.targets[0].resume, [Resume::Holdback, Resume::Instructed]);
        assert_eq!(a.targets[0].holdback, Some(Holdback::All));
        assert_eq!(a.targets[1].resume, [Resume::None], "the target's own list wins");
        assert_eq!(a.targets[1].holdback, None, "its list has no holdback");
        let b = ok.route("b").unwrap();
        assert_eq!(b.targets[0].resume, DEFAULT_RESUME);
        assert_eq!(b.targets[0].holdback, None);
        // a route's window for the targets whose own lists hold back
        let inherit = compile(
            "ok.toml",
            &format!(
                "{base}[routes.a]\nholdback = 16\ntargets = [{{ provider = \"local\", model = \"m\", resume = [\"holdback\", \"instructed\"] }}, {{ provider = \"local\", model = \"n\" }}]\n"
            ),
        )
        .unwrap();
        let a = inherit.route("a").unwrap();
        assert_eq!((a.targets[0].holdback, a.targets[1].holdback), (Some(Holdback::Events(16)), None));

        for (route, message) in [
            ("resume = [\"prefill\", \"prefill\"]", "`prefill` is listed twice"),
            ("resume = [\"none\", \"prefill\"]", "cannot be listed with other strategies"),
            ("resume = []", "an empty list"),
            ("resume = [\"rewind\"]", "unknown variant `rewind`"),
            ("holdback = 16", "`resume` does not list \"holdback\""),
            ("resume = [\"none\", \"holdback\"]", "`[\"holdback\"]` alone holds back"),
            ("resume = [\"holdback\"]\nholdback = 0", "holds nothing back"),
            ("resume = [\"holdback\"]\nholdback = \"most\"", "expected a number of content events or \"all\""),
        ] {
            let text = format!("{base}[routes.a]\n{route}\ntargets = [{{ provider = \"local\", model = \"m\" }}]\n");
            let e = errors(&text);
            assert!(e.iter().any(|m| m.contains("routes.a.") && m.contains(message)), "{route}: {e:#?}");
        }
    }

    #[test]
    fn every_error_is_reported_at_once_with_line_column_and_key() {
        let text = "[providers.local]\nprotocol = \"openai\"\nbase_url = \"http://x\"\n\n[routes.a]\ntargets = [{ provider = \"nope\", model = \"m\" }]\n\n[routes.b]\ntargets = [{ provider = \"local\", modle = \"m\" }]\n\n[routes.c]\ntargets = []\ntimeouts = { total = \"soon\" }\n";
        let e = errors(text);
        assert!(
            e.iter().any(|m| m.starts_with("bad.toml:6:25: `routes.a.targets[0].provider`: unknown provider `nope`")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("bad.toml:9:")
                && m.contains("`routes.b.targets[0].modle`")
                && m.contains("unknown field `modle`")),
            "{e:#?}"
        );
        assert!(
            e.iter().any(|m| m.starts_with("bad.toml:13:")
                && m.contains("routes.c.timeouts.total")
                && m.contains("invalid duration")),
            "{e:#?}"
        );
    }

    #[test]
    fn policy_models_extend_and_override_the_catalog() {
        let text = "[providers.openai]\napi_key_env = \"PATH\"\n[providers.openai.models.\"gpt-4o\"]\naccepts = [\"tools\"]\n[providers.openai.models.\"my-ft\"]\ncontext_window = 8000\nmax_output_tokens = 1000\naccepts = [\"tools\", \"vision\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"my-ft\" }]\n";
        let p = compile("ok.toml", text).unwrap();
        let route = p.route("a").unwrap();
        let gpt = route.targets[0].model_profile.as_ref().unwrap();
        // overridden field, kept fields
        assert_eq!(gpt.accepts, Some([crate::capability::Feature::Tools].into()));
        assert_eq!(gpt.context_window, 128_000);
        let ft = route.targets[1].model_profile.as_ref().unwrap();
        assert_eq!((ft.context_window, ft.max_output_tokens), (8000, 1000));
        // the adapters see the same catalog
        let profile = p.provider("openai").and_then(|p| p.profile.as_ref()).unwrap();
        assert_eq!(profile.model("my-ft").map(|m| m.context_window), Some(8000));
    }

    #[test]
    fn a_new_model_needs_its_limits_and_features_have_names() {
        let e = errors(
            "[providers.openai.models.\"mine\"]\naccepts = [\"tools\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"mine\" }]\n",
        );
        assert!(
            e.iter().any(|m| m.starts_with("bad.toml:")
                && m.contains("`providers.openai.models.\"mine\"`")
                && m.contains("set `context_window` and `max_output_tokens`")),
            "{e:#?}"
        );
        let e = errors(
            "[providers.openai.models.\"gpt-4o\"]\naccepts = [\"telepathy\"]\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
        );
        assert!(e.iter().any(|m| m.starts_with("bad.toml:2:") && m.contains("telepathy")), "{e:#?}");
    }

    #[test]
    fn syntax_errors_point_at_line_and_column() {
        let e = errors("[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }\n");
        assert!(e[0].starts_with("bad.toml:2:"), "{e:#?}");
    }

    #[test]
    fn empty_and_half_written_files_are_rejected() {
        assert!(errors("")[0].contains("empty"));
        assert!(errors("   \n")[0].contains("empty"));
        assert!(!errors("[routes.a]\ntargets = [{ provider = \"ope").is_empty());
    }

    #[test]
    fn empty_route_unknown_top_level_and_class_are_errors() {
        let e = errors("[routes.a]\ntargets = []\n[routes.a.on.overload]\nretry = false\n[extra]\nx = 1\n");
        assert!(e.iter().any(|m| m.contains("`routes.a.targets`: a route needs at least one target")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`routes.a.on.overload`: unknown error class")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`extra`: unknown table")), "{e:#?}");
    }

    #[test]
    fn a_hedge_names_when_and_how_many_and_needs_a_second_target() {
        let two = "targets = [{ provider = \"openai\", model = \"gpt-4o\" }, { provider = \"openai\", model = \"gpt-4o-mini\" }]\n";
        let p = compile("ok.toml", &format!("[routes.a]\nhedge = {{ after = \"1.5s\", max = 1 }}\n{two}[routes.b]\nhedge = {{ after = \"p95\" }}\n{two}")).unwrap();
        let a = p.route("a").unwrap().hedge.unwrap();
        assert_eq!((a.after, a.max), (super::super::HedgeAfter::Fixed(Duration::from_millis(1500)), 1));
        assert_eq!(p.route("b").unwrap().hedge.unwrap().after, super::super::HedgeAfter::Percentile(95));
        let e = errors(&format!(
            "[routes.a]\nhedge = {{ after = \"soon\" }}\n{two}[routes.b]\nhedge = {{ after = \"p100\" }}\n{two}[routes.c]\nhedge = {{ after = \"1s\", max = 0 }}\n{two}[routes.d]\nhedge = {{ after = \"1s\" }}\ntargets = [{{ provider = \"openai\", model = \"gpt-4o\" }}]\n"
        ));
        assert!(e.iter().any(|m| m.contains("`routes.a.hedge.after`") && m.contains("`soon`")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`routes.b.hedge.after`") && m.contains("p99")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`routes.c.hedge.max`") && m.contains("1 to 3")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`routes.d.hedge`") && m.contains("two targets")), "{e:#?}");
    }

    #[test]
    fn a_budget_needs_a_positive_amount_and_a_window_of_a_minute() {
        let e = errors(
            "[providers.openai]\nbudget = { usd = -1, per = \"1d\" }\n[routes.a]\nbudget = { usd = 5, per = \"10s\" }\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
        );
        assert!(e.iter().any(|m| m.contains("`providers.openai.budget.usd`") && m.contains("positive")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("`routes.a.budget.per`") && m.contains("a minute")), "{e:#?}");
        let e = errors(
            "[providers.openai.models.\"gpt-4o\"]\ninput_price = nan\ncache_write_price = -1.0\n[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n",
        );
        assert!(e.iter().any(|m| m.contains("gpt-4o\".input_price`") && m.contains("finite")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("gpt-4o\".cache_write_price`")), "{e:#?}");
    }

    #[test]
    fn tpm_smaller_than_a_request_is_an_error() {
        let e = errors(
            "[routes.a]\ntargets = [{ provider = \"anthropic\", model = \"claude-sonnet-4-5\", limits = { tpm = 1000 } }]\n",
        );
        assert!(e.iter().any(|m| m.contains("limits.tpm") && m.contains("64000")), "{e:#?}");
    }

    #[test]
    fn provider_without_protocol_or_url_is_explained() {
        let e = errors(
            "[providers.mine]\nbase_url = \"http://x\"\n[routes.a]\ntargets = [{ provider = \"mine\", model = \"m\" }]\n",
        );
        assert!(e.iter().any(|m| m.contains("needs `protocol")), "{e:#?}");
        let e = errors(
            "[providers.mine]\nprotocol = \"openai\"\n[routes.a]\ntargets = [{ provider = \"mine\", model = \"m\" }]\n",
        );
        assert!(e.iter().any(|m| m.contains("missing `base_url`")), "{e:#?}");
    }

    #[test]
    fn builtin_providers_can_be_named_directly() {
        let p =
            compile("p.toml", "[routes.a]\ntargets = [{ provider = \"groq\", model = \"llama-3.1-8b-instant\" }]\n")
                .unwrap();
        assert_eq!(p.provider("groq").unwrap().base_url, "https://api.groq.com/openai/v1");
    }

    #[test]
    fn drill_faults_are_validated() {
        let e = errors(
            "[routes.a]\ntargets = [{ provider = \"openai\", model = \"gpt-4o\" }]\n[[drill.faults]]\nprovider = \"openai\"\ninject = \"explode\"\nrate = 2.0\n[[drill.faults]]\nprovider = \"x\"\ninject = \"latency\"\n",
        );
        assert!(e.iter().any(|m| m.contains("drill.faults[0].inject")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("drill.faults[0].rate")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("drill.faults[1].provider")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("drill.faults[1].delay")), "{e:#?}");
    }
}
