//! `[providers.*]`: each provider's profile, URL, key, models, limits, budget, caller headers and
//! status page, checked and compiled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::budget;
use super::layers::{check_layer, merge_breaker, merge_limits, merge_timeouts};
use super::routes::builtin_names;
use crate::policy::ProviderPolicy;
use crate::policy::config::BreakerConfig;
use crate::policy::diagnostic::Collector;
use crate::policy::schema::{Layer, ProviderSpec, RouteSpec};
use crate::profile::{AuthScheme, ProviderProfile};
use crate::provider::Protocol;

pub(super) fn compile_providers(
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
) -> Option<crate::policy::StatusPageConfig> {
    use crate::policy::schema::StatusPageSpec;
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
    let interval = spec.status_interval.as_ref().map_or(crate::policy::DEFAULT_STATUS_INTERVAL, |d| d.get_ref().get());
    if !(MIN_STATUS_INTERVAL..=MAX_STATUS_INTERVAL).contains(&interval) {
        let span = spec.status_interval.as_ref().map_or_else(|| page.span(), Spanned::span);
        c.error(
            &span,
            format!("{key}.status_interval"),
            "a status page is read at most once a second and at least once a day (\"1s\" to \"1d\"; \"60s\" by default)",
        );
        return None;
    }
    Some(crate::policy::StatusPageConfig {
        url: crate::status_page::summary_url(&url),
        interval,
        on_incident: spec.on_incident.as_ref().map_or_else(Default::default, |o| *o.get_ref()),
    })
}
