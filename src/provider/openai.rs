//! Adapter stub (being written).
/// OpenAI adapter.
#[derive(Debug)]
pub struct OpenAi;
impl OpenAi {
    /// Stub constructor (replaced by the real adapter).
    pub fn new(_config: super::ProviderConfig) -> Result<Self, crate::error::ProviderError> {
        Ok(OpenAi)
    }
}
#[async_trait::async_trait]
impl super::Provider for OpenAi {
    fn name(&self) -> &str {
        "openai"
    }
    fn protocol(&self) -> super::Protocol {
        super::Protocol::Openai
    }
    async fn chat(&self, _call: super::Call<'_>) -> Result<crate::chat::ChatResponse, crate::error::ProviderError> {
        Err(crate::error::ProviderError::new(crate::error::ErrorClass::Connection, "openai", "stub"))
    }
    async fn chat_stream(&self, _call: super::Call<'_>) -> Result<super::ChatStream, crate::error::ProviderError> {
        Err(crate::error::ProviderError::new(crate::error::ErrorClass::Connection, "openai", "stub"))
    }
}
