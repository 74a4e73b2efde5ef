//! Counting a request's input tokens locally for OpenAI models, with OpenAI's own BPE tables
//! (`o200k_base` for GPT-4o, GPT-4.1, GPT-5 and the o-series; `cl100k_base` for GPT-4 and
//! GPT-3.5; bundled by `tiktoken-rs`).
//!
//! The message framing follows OpenAI's published recipe for chat models: 3 tokens per message,
//! 1 more for a `name`, 3 to prime the reply. Tool definitions are counted as their JSON (OpenAI
//! renders them in an undocumented form of its own, so their share is approximate). Images,
//! documents and audio are not counted here: their cost depends on what OpenAI decodes from them,
//! and a count that left them out would be wrong without saying so, so such a request is refused
//! with a message naming the part.

use tiktoken_rs::CoreBPE;

use crate::chat::{ChatRequest, ContentPart, Role};

const PER_MESSAGE: u64 = 3;
const PER_NAME: u64 = 1;
const REPLY_PRIMING: u64 = 3;

/// The tokenizer of an OpenAI model, when its family is known.
fn tokenizer(model: &str) -> Option<&'static CoreBPE> {
    // not `bpe_for_model`: for a model it does not know, that builds an error (and captures a
    // backtrace when RUST_BACKTRACE is set), microseconds on every limited request
    tiktoken_rs::tokenizer::get_tokenizer(model).and_then(|t| tiktoken_rs::bpe_for_tokenizer(t).ok())
}

/// Whether `model` has a known tokenizer.
pub fn knows(model: &str) -> bool {
    tokenizer(model).is_some()
}

/// Loads the tokenizers of `models` (their tables take a while to build, which a first request
/// should not wait for): what the gateway does, off the request path, as it starts.
pub fn warm<'a>(models: impl IntoIterator<Item = &'a str>) {
    for model in models {
        let _ = tokenizer(model);
    }
}

/// Which tokenizer `model` uses, as an id two models share when they share the tables.
pub(crate) fn tokenizer_id(model: &str) -> Option<usize> {
    tokenizer(model).map(|t| std::ptr::from_ref(t) as usize)
}

/// The input tokens of `request` on the OpenAI model `model`, or why they cannot be counted here.
pub fn count_openai(model: &str, request: &ChatRequest) -> Result<u64, String> {
    let bpe = tokenizer(model).ok_or_else(|| {
        format!("no tokenizer is known for the model `{model}`: its tokens cannot be counted locally")
    })?;
    let count = |text: &str| bpe.encode_with_special_tokens(text).len() as u64;
    let mut total = REPLY_PRIMING;
    for message in &request.messages {
        total += PER_MESSAGE + count(role(message.role));
        if message.extra.contains_key("name") {
            total += PER_NAME;
        }
        if let Some(name) = message.extra.get("name").and_then(|v| v.as_str()) {
            total += count(name);
        }
        for part in &message.content {
            total += part_tokens(part, &count)?;
        }
    }
    if !request.tools.is_empty() {
        let tools: Vec<_> = request
            .tools
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        total += count(&serde_json::Value::Array(tools).to_string());
    }
    Ok(total)
}

/// Why `request` cannot be counted here whatever the model (an image, say), without counting it.
pub(crate) fn uncountable(request: &ChatRequest) -> Option<String> {
    fn check(part: &ContentPart) -> Option<String> {
        match part {
            ContentPart::ToolResult(r) => r.content.iter().find_map(check),
            other => part_tokens(other, &|_: &str| 0).err(),
        }
    }
    request.messages.iter().flat_map(|m| &m.content).find_map(check)
}

fn role(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::Developer => "developer",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn part_tokens(part: &ContentPart, count: &impl Fn(&str) -> u64) -> Result<u64, String> {
    let refused = |what: &str| {
        Err(format!(
            "{what} cannot be counted locally for an OpenAI model (its cost depends on what the provider decodes from it): count on an Anthropic target, or leave it out"
        ))
    };
    Ok(match part {
        ContentPart::Text { text, .. } => count(text),
        ContentPart::Refusal { refusal, .. } => count(refusal),
        ContentPart::ToolCall(call) => count(&call.name) + count(&call.arguments),
        ContentPart::ToolResult(result) => {
            let mut n = 0;
            for p in &result.content {
                n += part_tokens(p, count)?;
            }
            n
        }
        ContentPart::Thinking { thinking, .. } => count(thinking),
        ContentPart::Image { .. } => return refused("an image"),
        ContentPart::Document { .. } => return refused("a document"),
        ContentPart::Audio { .. } => return refused("audio"),
        ContentPart::RedactedThinking { .. } => return refused("redacted thinking"),
        ContentPart::Native { .. } => return refused("a content part of another wire"),
        #[allow(unreachable_patterns)]
        _ => return refused("this content part"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    #[test]
    fn counts_follow_the_chat_recipe_with_the_real_tables() {
        // "Hello there" is two tokens in o200k_base: ["Hello", " there"]; "user" one
        let request = ChatRequest::new([Message::text(Role::User, "Hello there")]);
        assert_eq!(count_openai("gpt-4o-mini", &request), Ok(3 + 3 + 1 + 2));
        // the same text, one message more
        let two =
            ChatRequest::new([Message::text(Role::System, "Hello there"), Message::text(Role::User, "Hello there")]);
        assert_eq!(count_openai("gpt-4o", &two), Ok(3 + 2 * (3 + 1 + 2)));
        // cl100k for GPT-4
        assert!(count_openai("gpt-4", &request).is_ok());
        assert!(knows("gpt-5-mini") && knows("o3") && !knows("llama-3.1-70b"));
    }

    #[test]
    fn what_cannot_be_counted_is_refused_by_name() {
        let unknown = count_openai("llama-3.1-70b", &ChatRequest::new([Message::text(Role::User, "hi")]));
        assert!(unknown.is_err_and(|e| e.contains("`llama-3.1-70b`")));
        let source = crate::chat::MediaSource::Url { url: "https://example.com/a.png".into() };
        let part = ContentPart::Image { source, detail: None, cache_control: None };
        let image = ChatRequest::new([Message::new(Role::User, [part])]);
        assert!(count_openai("gpt-4o", &image).is_err_and(|e| e.contains("an image")));
    }
}
