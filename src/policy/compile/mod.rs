//! From TOML text to a [`Policy`]: parse with spans, deserialize each section on its own (so one
//! bad section does not hide the errors of the others), then check what serde cannot.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Policy;
use super::config::Budget;
use super::diagnostic::{Collector, PolicyError};
use super::schema::{DrillSpec, Layer, ProviderSpec, RouteSpec, ServerSpec};
use drill::compile_drill;
use layers::check_layer;
use providers::compile_providers;
use routes::compile_routes;
use server::compile_server;

mod drill;
mod layers;
mod providers;
mod resume;
mod routes;
mod server;
#[cfg(test)]
mod tests;

#[cfg(all(feature = "gateway", feature = "sim"))]
pub(crate) use drill::fault_from_toml;

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

fn join(names: &BTreeSet<&str>) -> String {
    if names.is_empty() { "(none)".into() } else { names.iter().copied().collect::<Vec<_>>().join(", ") }
}
