//! `[routes.*]`: each route's strategy, hedging, class actions and overflow route, and its
//! targets, each with its levels merged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::layers::{check_layer, merge_breaker, merge_limits, merge_retry, merge_timeouts};
use super::resume::{check_resume, compile_resume};
use super::{budget, join};
use crate::error::ErrorClass;
use crate::policy::config::{BreakerConfig, ClassAction, ClassActions, DEFAULT_RESUME, Resume};
use crate::policy::diagnostic::Collector;
use crate::policy::schema::{ClassActionSpec, Layer, ProviderSpec, RouteSpec, TargetSpec};
use crate::policy::{ProviderPolicy, RoutePolicy, TargetPolicy};

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
    spec: Option<&Spanned<crate::policy::schema::HedgeSpec>>,
    targets: usize,
) -> Option<crate::policy::Hedge> {
    let spec = spec?;
    let h = spec.get_ref();
    let text = h.after.get_ref().trim();
    let after = match text.strip_prefix('p').map(str::parse::<u8>) {
        Some(Ok(p)) if (50..=99).contains(&p) => Some(crate::policy::HedgeAfter::Percentile(p)),
        Some(_) => None,
        None => crate::duration::parse_duration(text)
            .ok()
            .filter(|d| (Duration::from_millis(1)..=MAX_HEDGE_AFTER).contains(d))
            .map(crate::policy::HedgeAfter::Fixed),
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
    Some(crate::policy::Hedge { after, max })
}

pub(super) fn builtin_names() -> String {
    crate::profile::builtins().iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

pub(super) fn compile_routes(
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
        if spec.cache_affinity == Some(true) && spec.strategy == crate::policy::schema::Strategy::Priority {
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
    use crate::policy::config::BreakerEffect;
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
