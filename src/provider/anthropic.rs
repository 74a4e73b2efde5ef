//! Adapter stub (being written).
/// Anthropic adapter.
#[derive(Debug)]
pub struct Anthropic;
impl Anthropic {
    /// Stub constructor (replaced by the real adapter).
    pub fn new(_config: super::ProviderConfig) -> Result<Self, crate::error::ProviderError> {
        Ok(Anthropic)
    }
}
#[async_trait::async_trait]
impl super::Provider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }
    fn protocol(&self) -> super::Protocol {
        super::Protocol::Anthropic
    }
    async fn chat(&self, _call: super::Call<'_>) -> Result<crate::chat::ChatResponse, crate::error::ProviderError> {
        Err(crate::error::ProviderError::new(crate::error::ErrorClass::Connection, "anthropic", "stub"))
    }
    async fn chat_stream(&self, _call: super::Call<'_>) -> Result<super::ChatStream, crate::error::ProviderError> {
        Err(crate::error::ProviderError::new(crate::error::ErrorClass::Connection, "anthropic", "stub"))
    }
}
