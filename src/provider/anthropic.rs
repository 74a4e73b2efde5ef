//! Adapter stub (being written).
/// Anthropic adapter.
#[derive(Debug)]
pub struct Anthropic;
