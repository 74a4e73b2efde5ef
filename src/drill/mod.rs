//! Failover drills: inject faults, watch traffic move, prove recovery. See `docs/drills.md`.

pub mod file;
pub mod inject;
pub mod report;
pub mod runner;

pub use file::{Drill, DrillMode, Expect, Load, Operation, Phase};
pub use inject::{FaultGuard, FaultSnapshot, FaultSource};
pub use report::{DrillReport, PhaseReport, Verdict};
pub use runner::{DrillError, Progress, run};
