//! The normalized chat model shared by every provider: requests, responses and stream events.
//! A message and its content (`message`), a request (`request`), a complete answer
//! (`response`) and a streamed one (`stream`); every type is named from here.

mod message;
mod request;
mod response;
mod stream;

pub use message::{CacheControl, ContentPart, Extra, MediaSource, Message, Role, ToolCall, ToolResult};
pub use request::{ChatRequest, Opaque, Reasoning, ResponseFormat, Tool, ToolChoice};
pub use response::{ChatResponse, Choice, FinishReason, TokenLogprob, TopLogprob, Usage};
pub use stream::{Partial, StreamCollector, StreamEvent};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_make_the_common_case_one_line() {
        let req = ChatRequest::user("hi").system("be brief").max_tokens(64).stop("END");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages[1].text_content(), "hi");
        assert_eq!(req.max_tokens, Some(64));
        assert_eq!(req.stop, vec!["END".to_owned()]);
    }

    #[test]
    fn collector_assembles_text_tool_calls_and_restarts() {
        let mut c = StreamCollector::new();
        c.push(&StreamEvent::TextDelta { text: "Hel".into() });
        c.push(&StreamEvent::Restart { reason: "failover".into() });
        c.push(&StreamEvent::TextDelta { text: "Hi".into() });
        c.push(&StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("c1".into()),
            name: Some("f".into()),
            arguments: "{\"a\":".into(),
        });
        c.push(&StreamEvent::ToolCallDelta { index: 0, id: None, name: None, arguments: "1}".into() });
        c.push(&StreamEvent::Usage(Usage {
            input_tokens: 3,
            output_tokens: 2,
            cached_input_tokens: None,
            ..Usage::default()
        }));
        assert!(!c.is_finished());
        c.push(&StreamEvent::Finish { reason: FinishReason::ToolCalls });
        let r = c.finish("p", "m", None);
        let r = r.as_ref();
        assert_eq!(r.map(|r| r.text.as_str()), Some("Hi"));
        assert_eq!(r.map(|r| r.tool_calls[0].arguments.as_str()), Some("{\"a\":1}"));
        assert_eq!(r.map(|r| r.usage.total()), Some(5));
    }

    #[test]
    fn unfinished_stream_is_not_a_response() {
        let mut c = StreamCollector::new();
        c.push(&StreamEvent::TextDelta { text: "partial".into() });
        assert_eq!(c.partial().text, "partial");
        assert!(c.finish("p", "m", None).is_none());
    }
}
