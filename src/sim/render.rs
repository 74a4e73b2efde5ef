//! The simulated model's answer in the normalized model, for each wire's own encoder to write (the
//! one the gateway writes with): a whole answer as a [`ChatResponse`], a streamed one as the
//! [`StreamEvent`]s of each step of its script.

use super::answer::{self, Answer, Finish, Reply};
use super::wire::{self, Ids};
use crate::chat::{ChatResponse, Choice, ContentPart, StreamEvent, ToolCall, Usage};

/// Pieces a tool call's arguments are streamed in.
const ARGUMENT_PIECES: usize = 3;

/// The whole answer; `call_id` names its tool call, if it makes one. Every answer asked for (`n`)
/// is the same.
pub(crate) fn response(answer: &Answer, call_id: &str, ids: Ids) -> ChatResponse {
    let finish = wire::finish(&answer.reply);
    let (text, tool_calls, logprobs) = match &answer.reply {
        Reply::Text { tokens, .. } => {
            (tokens.concat(), Vec::new(), answer.logprobs.map(|top| answer::logprobs(tokens, top)))
        }
        Reply::Tool { name, input } => (String::new(), vec![ToolCall::new(call_id, name, input.to_string())], None),
    };
    let alternatives = (1..answer.choices)
        .map(|index| Choice {
            index,
            text: text.clone(),
            tool_calls: tool_calls.clone(),
            finish_reason: finish,
            refusal: None,
            logprobs: logprobs.clone(),
        })
        .collect();
    ChatResponse {
        tool_calls,
        reasoning: answer
            .thinking
            .iter()
            .map(|thinking| ContentPart::Thinking { thinking: thinking.clone(), signature: Some(signature(ids)) })
            .collect(),
        stop_sequence: stop_sequence(answer),
        logprobs,
        alternatives,
        usage: wire::usage(answer),
        ..ChatResponse::new("sim", &answer.model, text, finish)
    }
}

/// A streamed answer as stream events, in the steps a fault cuts it at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Steps {
    /// Before the first token: the usage known then (the prompt and a first token), the thinking,
    /// and the start of every answer's text or tool call.
    pub(crate) head: Vec<StreamEvent>,
    /// One step per token (a word, or a piece of a tool call's arguments): that token of every
    /// answer, each with its log probabilities when asked for.
    pub(crate) tokens: Vec<Vec<StreamEvent>>,
    /// After the last token: the other answers' finish, the usage, the stop sequence, the finish.
    pub(crate) tail: Vec<StreamEvent>,
}

/// The steps of `answer` streamed; `call_id` names its tool call, if it makes one.
pub(crate) fn steps(answer: &Answer, call_id: &str, ids: Ids) -> Steps {
    // the first answer's events as they are, every other answer's the same as its alternative
    let every = |events: Vec<StreamEvent>| -> Vec<StreamEvent> {
        (0..answer.choices.max(1))
            .flat_map(|index| {
                events.iter().map(move |event| match index {
                    0 => event.clone(),
                    index => StreamEvent::Alternative { index, event: Box::new(event.clone()) },
                })
            })
            .collect()
    };
    let usage = wire::usage(answer);
    let mut head = vec![StreamEvent::Usage(Usage { output_tokens: answer.output_tokens.min(1), ..usage })];
    if let Some(thinking) = &answer.thinking {
        head.push(StreamEvent::ThinkingDelta { thinking: thinking.clone() });
        head.push(StreamEvent::SignatureDelta { signature: signature(ids) });
    }
    let (opening, tokens) = match &answer.reply {
        Reply::Text { tokens, .. } => {
            let token = |text: &String| {
                let mut events = vec![StreamEvent::TextDelta { text: text.clone() }];
                if let Some(top) = answer.logprobs {
                    events.push(StreamEvent::Logprobs { content: answer::logprobs(std::slice::from_ref(text), top) });
                }
                every(events)
            };
            // an empty delta opens the text, as servers do before the first token
            (StreamEvent::TextDelta { text: String::new() }, tokens.iter().map(token).collect())
        }
        Reply::Tool { name, input } => {
            let piece = |arguments: String| {
                every(vec![StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments }])
            };
            let start = StreamEvent::ToolCallDelta {
                index: 0,
                id: Some(call_id.to_owned()),
                name: Some(name.clone()),
                arguments: String::new(),
            };
            (start, answer::pieces(&input.to_string(), ARGUMENT_PIECES).into_iter().map(piece).collect())
        }
    };
    head.extend(every(vec![opening]));
    let finish = wire::finish(&answer.reply);
    let mut tail: Vec<StreamEvent> = (1..answer.choices)
        .map(|index| StreamEvent::Alternative { index, event: Box::new(StreamEvent::Finish { reason: finish }) })
        .collect();
    tail.push(StreamEvent::Usage(usage));
    tail.extend(stop_sequence(answer).map(|sequence| StreamEvent::StopSequence { sequence }));
    tail.push(StreamEvent::Finish { reason: finish });
    Steps { head, tokens, tail }
}

/// The signature the simulator puts on its thinking.
fn signature(ids: Ids) -> String {
    format!("sig_sim_{}", ids.seq)
}

/// The stop sequence that ended the answer, if one did.
fn stop_sequence(answer: &Answer) -> Option<String> {
    match &answer.reply {
        Reply::Text { finish: Finish::StopSequence(sequence), .. } => Some(sequence.clone()),
        _ => None,
    }
}
