//! `[drill]`: the faults a drill injects, written in the policy or posted to the gateway.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::policy::diagnostic::Collector;
use crate::policy::schema::{DrillFaultSpec, DrillSpec};
use crate::policy::{InjectKind, LiveFault, ProviderPolicy};

// what only a fault posted to the gateway needs
#[cfg(all(feature = "gateway", feature = "sim"))]
use {
    super::section,
    crate::policy::Policy,
    crate::policy::diagnostic::PolicyError,
    toml::Spanned,
    toml::de::{DeTable, DeValue},
};

pub(super) fn compile_drill(
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
pub(super) fn parse_until(value: &toml::Value) -> Option<SystemTime> {
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
