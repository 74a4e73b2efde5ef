//! A streamed answer: its events, the collector that builds the answer from them, and what a
//! failed stream delivered.

use serde::{Deserialize, Serialize};

use super::message::{ContentPart, Extra, ToolCall};
use super::response::{ChatResponse, Choice, FinishReason, TokenLogprob, Usage};

/// One event of a streamed answer. A successful stream ends with exactly one [`StreamEvent::Finish`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// Text to append to the answer.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A piece of a tool call. `id` and `name` come with the first piece of each call; `arguments`
    /// pieces are concatenated in order.
    ToolCallDelta {
        /// Which tool call (0-based, in order of appearance).
        index: usize,
        /// The call's id, on its first piece.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The tool's name, on its first piece.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// A piece of the JSON arguments.
        arguments: String,
    },
    /// Reasoning text to append to the current thinking block (Anthropic `thinking_delta`); a
    /// thinking block starts at the first one after anything else.
    ThinkingDelta {
        /// The text.
        thinking: String,
    },
    /// The current thinking block's signature (Anthropic `signature_delta`), which closes it.
    SignatureDelta {
        /// The signature.
        signature: String,
    },
    /// A whole `redacted_thinking` block.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// Refusal text to append (OpenAI `delta.refusal`).
    RefusalDelta {
        /// The text.
        refusal: String,
    },
    /// Log probabilities of the tokens just sent (OpenAI `logprobs.content` of a chunk).
    Logprobs {
        /// One entry per token.
        content: Vec<TokenLogprob>,
    },
    /// An event of another answer than the first, when the request asked for `n > 1`.
    Alternative {
        /// Which answer (1 and up).
        index: usize,
        /// Its event (never `Usage`, `Restart` or another `Alternative`).
        event: Box<StreamEvent>,
    },
    /// The upstream stream's own members the model has no type for (OpenAI's chunk `id`,
    /// `created`, `system_fingerprint`, `service_tier`; Anthropic's message `id`, ...), once,
    /// before the first content: a caller of the same wire gets them back.
    Envelope {
        /// The wire they come from.
        dialect: crate::protocol::Protocol,
        /// The members.
        extra: Extra,
    },
    /// The stop sequence that ended the answer (Anthropic), just before `Finish`.
    StopSequence {
        /// The sequence.
        sequence: String,
    },
    /// Token usage (may come more than once; the last one wins).
    Usage(Usage),
    /// What the provider's rate-limit headers said as the stream started (the adapters send it
    /// first; the router learns from it and does not pass it on).
    RateLimit(crate::rate_limit::RateLimit),
    /// Discard everything received so far: the answer restarts on another target.
    /// Emitted only by the router, never by an adapter.
    Restart {
        /// Why the answer restarts.
        reason: String,
    },
    /// The answer is complete. Always the last event of a successful stream.
    Finish {
        /// Why the model stopped.
        reason: FinishReason,
    },
}

impl StreamEvent {
    /// Whether the event is part of the answer itself (text, a tool call, thinking, a refusal,
    /// or its end), as opposed to the preamble and bookkeeping around it (the envelope, usage,
    /// logprobs, the empty delta that opens a thinking block). The first-token timeout and the
    /// time to first token run until the first one.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ToolCallDelta { .. }
                | StreamEvent::RedactedThinking { .. }
                | StreamEvent::RefusalDelta { .. }
                | StreamEvent::Finish { .. }
        ) || matches!(self, StreamEvent::ThinkingDelta { thinking } if !thinking.is_empty())
    }
}

/// Accumulates stream events into a [`ChatResponse`]: what a consumer that wants the whole answer
/// does with a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamCollector {
    text: String,
    tool_calls: Vec<ToolCall>,
    reasoning: Vec<ContentPart>,
    refusal: Option<String>,
    stop_sequence: Option<String>,
    logprobs: Option<Vec<TokenLogprob>>,
    envelope: Option<(crate::protocol::Protocol, Extra)>,
    /// Answers 1 and up, by index.
    alternatives: Vec<(usize, StreamCollector)>,
    usage: Option<Usage>,
    rate_limit: Option<crate::rate_limit::RateLimit>,
    finish: Option<FinishReason>,
}

impl StreamCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one event.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.text.push_str(text),
            StreamEvent::ToolCallDelta { index, id, name, arguments } => {
                while self.tool_calls.len() <= *index {
                    self.tool_calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let call = &mut self.tool_calls[*index];
                if let Some(id) = id {
                    call.id.clone_from(id);
                }
                if let Some(name) = name {
                    call.name.clone_from(name);
                }
                call.arguments.push_str(arguments);
            }
            StreamEvent::ThinkingDelta { thinking } => match self.reasoning.last_mut() {
                Some(ContentPart::Thinking { thinking: open, signature: None }) => open.push_str(thinking),
                _ => self.reasoning.push(ContentPart::Thinking { thinking: thinking.clone(), signature: None }),
            },
            StreamEvent::SignatureDelta { signature } => match self.reasoning.last_mut() {
                Some(ContentPart::Thinking { signature: open @ None, .. }) => *open = Some(signature.clone()),
                _ => self
                    .reasoning
                    .push(ContentPart::Thinking { thinking: String::new(), signature: Some(signature.clone()) }),
            },
            StreamEvent::RedactedThinking { data } => {
                self.reasoning.push(ContentPart::RedactedThinking { data: data.clone() });
            }
            StreamEvent::RefusalDelta { refusal } => self.refusal.get_or_insert_with(String::new).push_str(refusal),
            StreamEvent::Logprobs { content } => {
                self.logprobs.get_or_insert_with(Vec::new).extend(content.iter().cloned());
            }
            StreamEvent::Alternative { index, event } => {
                let position = match self.alternatives.iter().position(|(i, _)| i == index) {
                    Some(p) => p,
                    None => {
                        self.alternatives.push((*index, StreamCollector::new()));
                        self.alternatives.len() - 1
                    }
                };
                if !matches!(**event, StreamEvent::Alternative { .. } | StreamEvent::Restart { .. }) {
                    self.alternatives[position].1.push(event);
                }
            }
            StreamEvent::StopSequence { sequence } => self.stop_sequence = Some(sequence.clone()),
            StreamEvent::Envelope { dialect, extra } => self.envelope = Some((*dialect, extra.clone())),
            StreamEvent::Usage(u) => self.usage = Some(*u),
            StreamEvent::RateLimit(r) => self.rate_limit = Some(*r),
            StreamEvent::Restart { .. } => *self = StreamCollector::new(),
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
        }
    }

    /// Text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a [`StreamEvent::Finish`] was seen.
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// What was received so far, as a checkpoint.
    pub fn partial(&self) -> Partial {
        Partial { text: self.text.clone(), tool_calls: self.tool_calls.clone(), usage: self.usage }
    }

    /// The complete response, or `None` when no [`StreamEvent::Finish`] was seen.
    pub fn finish(
        self,
        provider: impl Into<String>,
        model: impl Into<String>,
        request_id: Option<String>,
    ) -> Option<ChatResponse> {
        let finish_reason = self.finish?;
        let (dialect, extra) = match self.envelope {
            Some((dialect, extra)) => (Some(dialect), extra),
            None => (None, Extra::new()),
        };
        Some(ChatResponse {
            provider: provider.into(),
            model: model.into(),
            text: self.text,
            tool_calls: self.tool_calls,
            reasoning: self.reasoning,
            finish_reason,
            refusal: self.refusal,
            stop_sequence: self.stop_sequence,
            logprobs: self.logprobs,
            alternatives: self
                .alternatives
                .into_iter()
                .map(|(index, c)| Choice {
                    index,
                    text: c.text,
                    tool_calls: c.tool_calls,
                    finish_reason: c.finish.unwrap_or(FinishReason::Incomplete),
                    refusal: c.refusal,
                    logprobs: c.logprobs,
                })
                .collect(),
            usage: self.usage.unwrap_or_default(),
            request_id,
            dialect,
            extra,
            rate_limit: self.rate_limit,
        })
    }
}

/// What a stream delivered before it failed: the checkpoint a router can resume from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Text received so far.
    pub text: String,
    /// Tool calls completed so far (arguments may be incomplete for the last one).
    pub tool_calls: Vec<ToolCall>,
    /// Usage reported before the failure, if any.
    pub usage: Option<Usage>,
}

impl Partial {
    /// True when nothing at all was received.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.tool_calls.is_empty()
    }
}
