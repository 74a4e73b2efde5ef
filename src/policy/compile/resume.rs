//! How a streamed answer that failed midway is resumed: a level's `resume` list and `holdback`
//! window, checked, and a target's, inherited.

use toml::Spanned;

use crate::policy::config::{DEFAULT_HOLDBACK, DEFAULT_RESUME, Holdback, Resume};
use crate::policy::diagnostic::Collector;
use crate::policy::schema::{HoldbackSpec, RouteSpec, TargetSpec};

/// A target's `resume` list and `holdback` window: its own, else its route's, else the defaults.
/// What the route itself writes is checked once, by [`check_resume`] on the route.
pub(super) fn compile_resume(
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
pub(super) fn check_resume(
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
