//! Adapter stub (being written).
/// OpenAI adapter.
#[derive(Debug)]
pub struct OpenAi;
