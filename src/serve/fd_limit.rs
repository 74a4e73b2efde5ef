//! The process's file-descriptor limit, and the connection cap that fits inside it.
//!
//! A connection cap the descriptor limit cannot hold never acts: the process runs out of
//! descriptors first, `accept` fails with `EMFILE`, and a slow client holds the gateway shut. So
//! the gateway raises its soft limit to the hard one at start (as Go's runtime does), and caps
//! client connections at what the limit leaves after a reserve:
//!
//! - **Reserve**: [`PROCESS_RESERVE`] descriptors for the process itself (listeners, the policy,
//!   key and TLS files, Redis, the exporter, the runtime's own), plus, for each provider of the
//!   policy, the idle upstream connections its pool may keep
//!   ([`POOL_MAX_IDLE_PER_HOST`](crate::provider::POOL_MAX_IDLE_PER_HOST)).
//! - **Each client connection counts twice**: its own socket and the upstream connection its
//!   request holds while in flight. The overflow connections (answered at once, no upstream) count
//!   once.
//!
//! The cap is the smaller of `[server] max_connections` and that fit.

use std::sync::OnceLock;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use serde::Serialize;

/// Descriptors kept for everything that is not a client connection or a pooled upstream one.
pub const PROCESS_RESERVE: u64 = 64;

/// Overflow connections beyond a cap of `cap` (answered `/healthz` or a 503, then closed).
pub(crate) fn overflow(cap: usize) -> usize {
    (cap / 16).max(16)
}

/// The descriptor limit as the gateway found it and left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FdLimit {
    /// The soft limit in force (`None`: unlimited).
    pub soft: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
    /// The soft limit before the gateway raised it, when it did.
    pub raised_from: Option<u64>,
}

impl FdLimit {
    /// The limit of this process now, unchanged.
    pub fn current() -> FdLimit {
        let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
        FdLimit { soft: current, hard: maximum, raised_from: None }
    }

    /// The limit the gateway will run under: the soft limit raised to the hard one.
    pub fn at_start() -> FdLimit {
        let now = FdLimit::current();
        if now.soft == now.hard {
            return now;
        }
        FdLimit { soft: now.hard, hard: now.hard, raised_from: now.soft }
    }
}

/// Raises this process's soft limit to its hard limit, once; says so in the log. A limit that
/// cannot be raised is kept, and the cap fits it.
pub(crate) fn raise() -> FdLimit {
    static RAISED: OnceLock<FdLimit> = OnceLock::new();
    *RAISED.get_or_init(|| {
        let before = FdLimit::current();
        if before.soft == before.hard {
            tracing::info!(soft = ?before.soft, hard = ?before.hard, "file-descriptor limit");
            return before;
        }
        match setrlimit(Resource::Nofile, Rlimit { current: before.hard, maximum: before.hard }) {
            Ok(()) => {
                let after = FdLimit::current();
                tracing::info!(soft = ?after.soft, hard = ?after.hard, was = ?before.soft, "file-descriptor soft limit raised to the hard limit");
                FdLimit { raised_from: before.soft, ..after }
            }
            Err(e) => {
                tracing::warn!(soft = ?before.soft, hard = ?before.hard, "cannot raise the file-descriptor soft limit: {e}");
                before
            }
        }
    })
}

/// The connection cap in force and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionCap {
    /// `[server] max_connections` (or its default).
    pub max_connections: usize,
    /// The cap that acts: the smaller of `max_connections` and what the descriptor limit holds.
    pub effective: usize,
    /// The descriptor limit.
    pub fd_limit: FdLimit,
    /// Descriptors kept back: the process's own plus each provider's idle upstream pool.
    pub reserve: u64,
    /// Why the cap is what it is, in a sentence.
    pub why: String,
}

impl ConnectionCap {
    /// The cap for `max_connections` under `limit`, with `providers` providers in the policy.
    pub fn fit(max_connections: usize, limit: FdLimit, providers: usize) -> ConnectionCap {
        let reserve = reserve(providers);
        let effective = effective(max_connections, limit, providers);
        let Some(soft) = limit.soft else {
            let why = "no descriptor limit: `max_connections` acts".to_owned();
            return ConnectionCap { max_connections, effective, fd_limit: limit, reserve, why };
        };
        let fits = fits(soft, providers);
        let raised = limit
            .raised_from
            .map_or(String::new(), |from| format!(" (the soft limit, raised at start from {from} to the hard limit)"));
        let arithmetic = format!(
            "descriptor limit {soft}{raised} less a reserve of {reserve} ({PROCESS_RESERVE} for the process, {providers} \
             provider(s) × {} idle upstream connections) holds {fits} connections, each counted twice (its socket \
             and the upstream connection its request holds) beside {} overflow connections",
            crate::provider::POOL_MAX_IDLE_PER_HOST,
            overflow(fits),
        );
        let why = if fits < max_connections {
            format!("{arithmetic}: below `max_connections` {max_connections}, so the cap is {effective}")
        } else {
            format!("{arithmetic}: `max_connections` {max_connections} fits and acts")
        };
        ConnectionCap { max_connections, effective, fd_limit: limit, reserve, why }
    }
}

/// The connection cap that acts: [`ConnectionCap::fit`]'s number, without its sentence (asked for
/// every accepted connection).
pub(crate) fn effective(max_connections: usize, limit: FdLimit, providers: usize) -> usize {
    let Some(soft) = limit.soft else { return max_connections.max(1) };
    max_connections.min(fits(soft, providers)).max(1)
}

/// Descriptors kept back: the process's own and each provider's idle upstream pool.
fn reserve(providers: usize) -> u64 {
    PROCESS_RESERVE + providers as u64 * crate::provider::POOL_MAX_IDLE_PER_HOST as u64
}

/// The client connections a soft limit of `soft` holds beside the reserve.
fn fits(soft: u64, providers: usize) -> usize {
    usize::try_from(fit(soft.saturating_sub(reserve(providers)))).unwrap_or(usize::MAX)
}

/// The most client connections `available` descriptors hold: two each, beside the overflow.
fn fit(available: u64) -> u64 {
    let small = available.saturating_sub(16) / 2;
    if small < 256 { small } else { available * 16 / 33 }
}

/// Whether `accept` failed for want of descriptors (the process's or the system's).
pub(crate) fn exhausted(e: &std::io::Error) -> bool {
    let errno = rustix::io::Errno::from_io_error(e);
    errno == Some(rustix::io::Errno::MFILE) || errno == Some(rustix::io::Errno::NFILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_never_overspends_and_wastes_little() {
        for available in 0..20_000u64 {
            let c = fit(available);
            let used = 2 * c + overflow(usize::try_from(c).unwrap_or(usize::MAX)) as u64;
            assert!(c == 0 || used <= available, "{available}: {c} connections use {used}");
            let one_more = 2 * (c + 1) + overflow(usize::try_from(c + 1).unwrap_or(usize::MAX)) as u64;
            assert!(one_more > available.saturating_sub(40), "{available}: {c} leaves room");
        }
    }

    #[test]
    fn a_low_limit_lowers_the_cap_and_says_why() {
        let limit = FdLimit { soft: Some(256), hard: Some(256), raised_from: None };
        let cap = ConnectionCap::fit(1024, limit, 1);
        assert_eq!(cap.reserve, PROCESS_RESERVE + crate::provider::POOL_MAX_IDLE_PER_HOST as u64);
        assert!(cap.effective < 100 && cap.effective > 0, "{cap:?}");
        assert!(cap.why.contains("descriptor limit 256"), "{}", cap.why);
        assert!(cap.why.contains("below `max_connections` 1024"), "{}", cap.why);
    }

    #[test]
    fn a_high_limit_leaves_max_connections_in_force() {
        let limit = FdLimit { soft: Some(1 << 20), hard: Some(1 << 20), raised_from: Some(1024) };
        let cap = ConnectionCap::fit(1024, limit, 3);
        assert_eq!(cap.effective, 1024);
        assert!(cap.why.contains("fits and acts"), "{}", cap.why);
        let unlimited = ConnectionCap::fit(77, FdLimit { soft: None, hard: None, raised_from: None }, 3);
        assert_eq!(unlimited.effective, 77);
    }

    #[test]
    fn a_limit_below_the_reserve_still_admits_one() {
        let limit = FdLimit { soft: Some(50), hard: Some(50), raised_from: None };
        assert_eq!(ConnectionCap::fit(1024, limit, 4).effective, 1);
    }

    #[test]
    fn emfile_and_enfile_are_exhaustion_and_others_are_not() {
        assert!(exhausted(&std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error())));
        assert!(exhausted(&std::io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error())));
        assert!(!exhausted(&std::io::Error::from_raw_os_error(rustix::io::Errno::CONNABORTED.raw_os_error())));
        assert!(!exhausted(&std::io::Error::other("x")));
    }
}
