//! Simulated OpenAI and Anthropic providers on loopback, with scripted faults.

mod fault;

pub use fault::{Fault, FaultRule, When};
