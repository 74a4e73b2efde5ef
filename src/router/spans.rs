//! Tracing spans that cost nothing while nobody records them.

use tracing::Span;
use tracing::level_filters::LevelFilter;

/// `make()` when some subscriber records INFO spans, else `None`. Even a disabled span costs: every
/// enter, exit and drop of it runs tracing's `log` compatibility checks (on in this build, through
/// tower), and a request enters its spans at every poll.
pub(crate) fn info(make: impl FnOnce() -> Span) -> Option<Span> {
    (tracing::Level::INFO <= LevelFilter::current()).then(make)
}
