//! Tracing spans that cost nothing while nobody records them.

use tracing::Span;
use tracing::level_filters::LevelFilter;

/// `make()` when some subscriber records INFO spans, else [`Span::none`]. A disabled span is cheap
/// to make, but every enter and exit of it still runs tracing's `log` compatibility checks (on in
/// this build, through tower), and a request enters its spans at every poll.
pub(crate) fn info(make: impl FnOnce() -> Span) -> Span {
    if tracing::Level::INFO <= LevelFilter::current() { make() } else { Span::none() }
}
