//! Failover drills: inject faults, watch traffic move, prove recovery. See `docs/drills.md`.

#[cfg(feature = "sim")]
mod against;
pub mod file;
#[cfg(feature = "sim")]
mod html;
#[cfg(feature = "sim")]
pub mod report;
#[cfg(feature = "sim")]
pub mod runner;

pub use crate::router::{FaultGuard, FaultSnapshot, FaultSource};
#[cfg(feature = "sim")]
pub use against::run_against;
pub use file::{Drill, DrillMode, Expect, Load, Operation, Phase};
#[cfg(feature = "sim")]
pub use report::{DrillReport, PhaseReport, TimelinePoint, Transition, Verdict};
#[cfg(feature = "sim")]
pub use runner::{DrillError, Progress, run};
