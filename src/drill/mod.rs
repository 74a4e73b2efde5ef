//! Failover drills: inject faults, watch traffic move, prove recovery.

pub mod inject;

pub use inject::{FaultGuard, FaultSnapshot, FaultSource};
