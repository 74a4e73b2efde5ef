//! Placeholder until the dialect lands (replaced by the real module).

use bytes::Bytes;

use super::dialect::{Dialect, Encoder, Failure, Parsed};
use crate::chat::StreamEvent;
use crate::router::RoutedResponse;

/// The wire.
#[derive(Debug)]
pub(crate) struct AnthropicWire;

/// Its encoder.
#[derive(Debug)]
pub(crate) struct Enc;

impl Encoder for Enc {
    fn start(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
    fn event(&mut self, _event: &StreamEvent) -> Vec<Bytes> {
        Vec::new()
    }
    fn error(&mut self, _failure: &Failure) -> Vec<Bytes> {
        Vec::new()
    }
}

impl Dialect for AnthropicWire {
    type Encoder = Enc;
    fn parse(_body: &[u8]) -> Result<Parsed, String> {
        Err("not yet".into())
    }
    fn response(_r: &RoutedResponse) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn error(_f: &Failure) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn encoder(_parsed: &Parsed, _provider: &str, _model: &str) -> Enc {
        Enc
    }
}
