//! What a model accepts, and what a request needs: the router skips a target whose model profile
//! says it cannot honour the request (a picture never lands on a text-only fallback).
//!
//! A model profile lists its features in `accepts`; a model whose profile has no `accepts` list
//! (or no profile at all) is taken to accept everything, and its provider has the last word.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chat::{ChatRequest, ContentPart, Reasoning, ResponseFormat};

/// A feature a request may need and a model may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Feature {
    /// Image input.
    Vision,
    /// PDF (document) input.
    Pdf,
    /// Audio input.
    Audio,
    /// Tool (function) calling.
    Tools,
    /// Output that follows a JSON schema (`response_format` `json_schema`).
    JsonSchema,
    /// Reasoning effort or a thinking budget.
    Reasoning,
    /// Log probabilities of the answer's tokens.
    Logprobs,
    /// Several answers to one request (`n > 1`).
    N,
}

impl Feature {
    /// Every feature, in order.
    pub const ALL: [Feature; 8] = [
        Feature::Vision,
        Feature::Pdf,
        Feature::Audio,
        Feature::Tools,
        Feature::JsonSchema,
        Feature::Reasoning,
        Feature::Logprobs,
        Feature::N,
    ];

    /// The name used in profiles (`accepts = ["vision", ...]`).
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Vision => "vision",
            Feature::Pdf => "pdf",
            Feature::Audio => "audio",
            Feature::Tools => "tools",
            Feature::JsonSchema => "json_schema",
            Feature::Reasoning => "reasoning",
            Feature::Logprobs => "logprobs",
            Feature::N => "n",
        }
    }

    /// What a skip or a refusal says the request needs (`unsupported: image input`).
    pub fn describe(self) -> &'static str {
        match self {
            Feature::Vision => "image input",
            Feature::Pdf => "PDF input",
            Feature::Audio => "audio input",
            Feature::Tools => "tools",
            Feature::JsonSchema => "JSON schema output",
            Feature::Reasoning => "reasoning",
            Feature::Logprobs => "logprobs",
            Feature::N => "several choices (n > 1)",
        }
    }
}

impl Feature {
    /// The feature a wire field asks for, if any: when a target drops that field (under
    /// `unsupported = "drop"`), the request no longer needs the feature there.
    pub fn of_field(field: &str) -> Option<Feature> {
        Some(match field {
            "logprobs" | "top_logprobs" => Feature::Logprobs,
            "n" => Feature::N,
            "input_audio" => Feature::Audio,
            "reasoning_effort" | "thinking" => Feature::Reasoning,
            _ => return None,
        })
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The features `request` needs, in order; empty for plain text.
pub fn required(request: &ChatRequest) -> BTreeSet<Feature> {
    let mut needs = BTreeSet::new();
    for message in &request.messages {
        for part in &message.content {
            needs_part(part, &mut needs);
        }
    }
    if !request.tools.is_empty() {
        needs.insert(Feature::Tools);
    }
    if matches!(request.response_format, Some(ResponseFormat::JsonSchema { .. })) {
        needs.insert(Feature::JsonSchema);
    }
    if matches!(request.reasoning, Some(Reasoning::Effort { .. } | Reasoning::Budget { .. })) {
        needs.insert(Feature::Reasoning);
    }
    if request.logprobs == Some(true) {
        needs.insert(Feature::Logprobs);
    }
    if request.n.is_some_and(|n| n > 1) {
        needs.insert(Feature::N);
    }
    needs
}

fn needs_part(part: &ContentPart, needs: &mut BTreeSet<Feature>) {
    match part {
        ContentPart::Image { .. } => {
            needs.insert(Feature::Vision);
        }
        ContentPart::Document { .. } => {
            needs.insert(Feature::Pdf);
        }
        ContentPart::Audio { .. } => {
            needs.insert(Feature::Audio);
        }
        ContentPart::ToolResult(result) => {
            for inner in &result.content {
                needs_part(inner, needs);
            }
        }
        _ => {}
    }
}

/// What of `needs` a model that `accepts` these features lacks; nothing when its profile does
/// not say (`None`).
pub fn missing(needs: &BTreeSet<Feature>, accepts: Option<&BTreeSet<Feature>>) -> Vec<Feature> {
    match accepts {
        Some(accepts) => needs.difference(accepts).copied().collect(),
        None => Vec::new(),
    }
}

/// `image input, JSON schema output`: the features, as a skip reason says them.
pub fn describe(features: &[Feature]) -> String {
    features.iter().map(|f| f.describe()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chat::{MediaSource, Message, Role, Tool, ToolResult};

    #[test]
    fn a_plain_request_needs_nothing() {
        assert!(required(&ChatRequest::user("hi")).is_empty());
    }

    #[test]
    fn parts_tools_and_options_are_needs() {
        let mut result = ToolResult::text("c1", "here");
        result.content.push(ContentPart::image(MediaSource::url("https://x/y.png")));
        let mut r = ChatRequest::new([
            Message::new(Role::User, [ContentPart::document(MediaSource::base64("application/pdf", "JVBE"))]),
            Message::new(Role::Tool, [ContentPart::ToolResult(result)]),
        ]);
        r.tools.push(Tool::new("f", "does f", serde_json::json!({"type": "object"})));
        r.response_format = Some(ResponseFormat::JsonSchema {
            name: Some("a".into()),
            description: None,
            schema: serde_json::json!({}),
            strict: None,
        });
        r.reasoning = Some(Reasoning::Effort { effort: "low".into() });
        r.logprobs = Some(true);
        r.n = Some(2);
        let needs: Vec<Feature> = required(&r).into_iter().collect();
        assert_eq!(
            needs,
            [
                Feature::Vision,
                Feature::Pdf,
                Feature::Tools,
                Feature::JsonSchema,
                Feature::Reasoning,
                Feature::Logprobs,
                Feature::N
            ]
        );
        // what does not need a feature: thinking off, logprobs off, one choice
        r.reasoning = Some(Reasoning::Disabled);
        r.logprobs = Some(false);
        r.n = Some(1);
        assert!(!required(&r).contains(&Feature::Reasoning));
        assert!(!required(&r).contains(&Feature::Logprobs));
        assert!(!required(&r).contains(&Feature::N));
    }

    #[test]
    fn missing_is_what_a_declared_model_lacks_and_nothing_for_an_undeclared_one() {
        let needs: BTreeSet<Feature> = [Feature::Vision, Feature::Tools].into();
        let text_only: BTreeSet<Feature> = [Feature::Tools].into();
        assert_eq!(missing(&needs, Some(&text_only)), [Feature::Vision]);
        assert!(missing(&needs, None).is_empty());
        assert_eq!(describe(&[Feature::Vision, Feature::JsonSchema]), "image input, JSON schema output");
    }

    #[test]
    fn names_round_trip_through_serde() {
        for f in Feature::ALL {
            let v = serde_json::to_value(f).unwrap();
            assert_eq!(v, f.as_str());
            assert_eq!(serde_json::from_value::<Feature>(v).unwrap(), f);
        }
    }
}
