//! The simulated model: what it answers, whatever the wire. The dialects turn a request body into a
//! [`Prompt`] and an [`Answer`] (or a [`Reject`]) back into bytes.

use serde_json::Value;

use super::schema;
use crate::chat::{
    ChatRequest, ContentPart, Message, Reasoning, ResponseFormat, Role, TokenLogprob, ToolChoice, TopLogprob,
};
use crate::profile::ProviderProfile;
use crate::provider::Protocol;

/// Words of the last user text echoed in the answer.
const ECHOED_WORDS: usize = 12;
/// Context window of models no catalog knows.
const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;
/// Context window of `*-tiny` models, small enough to overflow from a test.
const TINY_CONTEXT_WINDOW: u64 = 64;
/// The model name that does not exist.
pub(crate) const MISSING_MODEL: &str = "missing-model";

/// What the request asks, in wire-neutral terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Prompt {
    /// The requested model.
    pub(crate) model: String,
    /// The text of the last user turn that has text.
    pub(crate) last_user_text: String,
    /// Whether the conversation ends with a user turn carrying no tool result: only then may
    /// `/tool` trigger a call, so an agent loop feeding tool results back terminates.
    pub(crate) ends_with_user_text: bool,
    /// Text of a trailing assistant turn the model should continue (Anthropic only).
    pub(crate) prefill: Option<String>,
    /// The partial answer of an instructed continuation (the router's instruction after it): the
    /// model goes on from its end, repeating its last word as models often do.
    pub(crate) instructed: Option<String>,
    /// Characters of all text content (system included), for the input token count.
    pub(crate) input_chars: usize,
    /// The output limit in tokens.
    pub(crate) max_tokens: Option<u64>,
    /// Stop sequences (OpenAI `stop`, Anthropic `stop_sequences`).
    pub(crate) stop: Vec<String>,
    /// The declared tools, in order.
    pub(crate) tools: Vec<ToolSpec>,
    /// What the request says about tool use.
    pub(crate) tool_choice: ToolMode,
    /// The shape the text must have, when the request asks for JSON.
    pub(crate) format: Option<Shape>,
    /// Whether the request enabled extended thinking (Anthropic `thinking.type = "enabled"`).
    pub(crate) thinking: bool,
    /// Whether the request set a reasoning effort (OpenAI `reasoning_effort`): the answer then
    /// reports reasoning tokens.
    pub(crate) reasoning: bool,
    /// How many answers the request asked for (OpenAI `n`); 0 means 1.
    pub(crate) choices: usize,
    /// `Some(top)` when the request asked for log probabilities (OpenAI `logprobs`, `top_logprobs`).
    pub(crate) logprobs: Option<usize>,
    /// Characters of text up to the last `cache_control` mark (Anthropic): what the simulated
    /// cache writes on the first call with them and serves on the next ones.
    pub(crate) cached_chars: usize,
    /// The text of every part and tool result, in order (what the cache keys on).
    pub(crate) text: String,
}

impl Prompt {
    /// What a request, decoded by its wire's codec, asks of the model `model`.
    pub(crate) fn from_request(model: &str, request: &ChatRequest, protocol: Protocol) -> Prompt {
        let text = |m: &Message| m.content.iter().filter_map(ContentPart::as_text).collect::<Vec<_>>().join(" ");
        // an instructed continuation: [..., user question, assistant partial, user instruction]
        let instructed = match request.messages.as_slice() {
            [.., partial, instruction]
                if instruction.role == Role::User
                    && partial.role == Role::Assistant
                    && text(instruction) == crate::router::INSTRUCTION =>
            {
                Some(text(partial))
            }
            _ => None,
        };
        let asked = &request.messages[..request.messages.len() - if instructed.is_some() { 2 } else { 0 }];
        let last_user_text = asked
            .iter()
            .rev()
            .filter(|m| m.role == Role::User)
            .map(text)
            .find(|t| !t.trim().is_empty())
            .unwrap_or_default();
        let last = request.messages.last();
        let has_tool_result = |m: &Message| m.content.iter().any(|p| matches!(p, ContentPart::ToolResult(_)));
        // the text of every part and tool result, in order; where the last cache mark ends
        let (mut input_chars, mut cached_chars, mut all) = (0, 0, String::new());
        for part in request.messages.iter().flat_map(|m| &m.content) {
            let (chars, marked) = match part {
                ContentPart::Text { text, cache_control, .. } => {
                    all.push_str(text);
                    (text.chars().count(), cache_control.is_some())
                }
                ContentPart::ToolResult(r) => {
                    let text = r.text_content();
                    all.push_str(&text);
                    (text.chars().count(), r.cache_control.is_some())
                }
                ContentPart::Image { cache_control, .. } | ContentPart::Document { cache_control, .. } => {
                    (0, cache_control.is_some())
                }
                _ => (0, false),
            };
            input_chars += chars;
            if marked {
                cached_chars = input_chars;
            }
        }
        let reasons = matches!(request.reasoning, Some(Reasoning::Effort { .. } | Reasoning::Budget { .. }));
        Prompt {
            model: model.to_owned(),
            last_user_text,
            ends_with_user_text: last.is_some_and(|m| m.role == Role::User && !has_tool_result(m)),
            // only Claude continues an assistant turn placed last
            prefill: last
                .filter(|m| protocol == Protocol::Anthropic && m.role == Role::Assistant)
                .map(|m| m.content.iter().filter_map(ContentPart::as_text).collect::<String>()),
            instructed,
            input_chars,
            max_tokens: request.max_tokens.map(u64::from),
            stop: request.stop.clone(),
            tools: request
                .tools
                .iter()
                .map(|t| ToolSpec { name: t.name.clone(), parameters: t.parameters.clone() })
                .collect(),
            tool_choice: match &request.tool_choice {
                None | Some(ToolChoice::Auto) => ToolMode::Auto,
                Some(ToolChoice::None) => ToolMode::None,
                Some(ToolChoice::Required) => ToolMode::Required,
                Some(ToolChoice::Tool(name)) => ToolMode::Named(name.clone()),
            },
            // Claude shows its thinking; OpenAI's reasoning models only count it
            thinking: reasons && protocol == Protocol::Anthropic,
            reasoning: reasons && protocol.is_openai(),
            format: match &request.response_format {
                Some(ResponseFormat::JsonObject) => Some(Shape::JsonObject),
                Some(ResponseFormat::JsonSchema { schema, .. }) => Some(Shape::JsonSchema(schema.clone())),
                _ => None,
            },
            choices: request.n.map_or(1, |n| n as usize),
            logprobs: (request.logprobs == Some(true)).then(|| request.top_logprobs.map_or(0, |t| t as usize)),
            cached_chars,
            text: all,
        }
    }
}

/// A declared tool.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    /// Its name.
    pub(crate) name: String,
    /// The JSON Schema of its arguments.
    pub(crate) parameters: Value,
}

/// The shape of the answer's text the request asks for (`response_format`, `output_format`,
/// `text.format`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Any JSON object.
    JsonObject,
    /// JSON valid for this schema.
    JsonSchema(Value),
}

/// The request's `tool_choice`, in wire-neutral terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ToolMode {
    /// The model decides (here: only on `/tool`).
    #[default]
    Auto,
    /// Never call a tool.
    None,
    /// Must call some tool (`required` / `any`).
    Required,
    /// Must call this tool.
    Named(String),
}

/// Why a request gets a 4xx before any answer; each dialect words it its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// A 400 `invalid_request_error`.
    Invalid {
        /// The message.
        message: String,
        /// The offending parameter (OpenAI `param`).
        param: Option<&'static str>,
    },
    /// A 404 for the model.
    ModelNotFound(String),
    /// The prompt does not fit the model's context window.
    ContextExceeded {
        /// The window.
        limit: u64,
        /// The prompt's size.
        tokens: u64,
    },
}

impl Reject {
    /// A 400 with a message and no parameter.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Reject::Invalid { message: message.into(), param: None }
    }

    /// A 400 about one parameter.
    pub(crate) fn param(param: &'static str, message: impl Into<String>) -> Self {
        Reject::Invalid { message: message.into(), param: Some(param) }
    }
}

/// Why the answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Said everything.
    Stop,
    /// Reached this stop sequence (not included in the text).
    StopSequence(String),
    /// Hit `max_tokens`.
    Length,
}

/// What the model says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Text, as tokens: each word with the whitespace before it.
    Text {
        /// The tokens; concatenated they are the text.
        tokens: Vec<String>,
        /// Why it ended.
        finish: Finish,
    },
    /// One tool call.
    Tool {
        /// The tool's name.
        name: String,
        /// The arguments, a JSON object.
        input: Value,
    },
}

/// The model's complete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The model that answers (as requested).
    pub(crate) model: String,
    /// Prompt size in tokens.
    pub(crate) input_tokens: u64,
    /// Answer size in tokens.
    pub(crate) output_tokens: u64,
    /// The answer.
    pub(crate) reply: Reply,
    /// The reasoning shown before the answer, when the request enabled thinking.
    pub(crate) thinking: Option<String>,
    /// Output tokens spent reasoning (counted in `output_tokens` too), when the request set an effort.
    pub(crate) reasoning_tokens: Option<u64>,
    /// Prompt tokens read from the cache (counted in `input_tokens` too).
    pub(crate) cached_tokens: u64,
    /// Prompt tokens written to the cache (counted in `input_tokens` too).
    pub(crate) cache_write_tokens: u64,
    /// How many answers to send (all the same reply).
    pub(crate) choices: usize,
    /// `Some(top)` when log probabilities are to be sent, with `top` alternatives per token.
    pub(crate) logprobs: Option<usize>,
}

#[cfg(test)]
impl Answer {
    /// The answer text (empty for a tool call).
    pub(crate) fn text(&self) -> String {
        match &self.reply {
            Reply::Text { tokens, .. } => tokens.concat(),
            Reply::Tool { .. } => String::new(),
        }
    }
}

/// Answers a prompt on `protocol`, or says why not.
pub(crate) fn answer(protocol: Protocol, prompt: &Prompt) -> Result<Answer, Reject> {
    // the Responses API serves OpenAI's models
    let protocol = if protocol == Protocol::OpenaiResponses { Protocol::Openai } else { protocol };
    if prompt.model == MISSING_MODEL {
        return Err(Reject::ModelNotFound(prompt.model.clone()));
    }
    if let Some(prefill) = &prompt.prefill {
        check_prefill(&prompt.model, prefill)?;
    }
    let input_tokens = prompt.input_chars.div_ceil(4) as u64;
    let limit = context_window(protocol, &prompt.model);
    if input_tokens > limit {
        return Err(Reject::ContextExceeded { limit, tokens: input_tokens });
    }
    let reply = match tool_to_call(prompt) {
        Some((name, parameters)) => Reply::Tool { name, input: arguments(parameters, &prompt.last_user_text) },
        None => text_reply(prompt),
    };
    let output_tokens = match &reply {
        Reply::Text { tokens, .. } => tokens.len() as u64,
        Reply::Tool { input, .. } => input.to_string().split_whitespace().count() as u64,
    };
    let thinking = prompt.thinking.then(|| format!("The user said: {}", prompt.last_user_text));
    // a reasoning model thinks before it answers: as many tokens as the prompt's words, at least one
    let reasoning_tokens = prompt.reasoning.then(|| (prompt.last_user_text.split_whitespace().count() as u64).max(1));
    Ok(Answer {
        model: prompt.model.clone(),
        input_tokens,
        output_tokens: output_tokens + reasoning_tokens.unwrap_or(0),
        reply,
        thinking,
        reasoning_tokens,
        // what the cache reads and writes is the provider's state: set by `PromptCache::apply`
        cached_tokens: 0,
        cache_write_tokens: 0,
        choices: prompt.choices.max(1),
        logprobs: prompt.logprobs,
    })
}

/// The log probabilities of `tokens`: the token itself at -0.25, then `top` alternatives (the
/// token itself first, then made-up ones, each less likely).
pub(crate) fn logprobs(tokens: &[String], top: usize) -> Vec<TokenLogprob> {
    let alternative = |token: &str, logprob: f64| TopLogprob {
        token: token.to_owned(),
        logprob,
        bytes: Some(token.as_bytes().to_vec()),
    };
    tokens
        .iter()
        .map(|t| TokenLogprob {
            token: t.clone(),
            logprob: -0.25,
            bytes: Some(t.as_bytes().to_vec()),
            top_logprobs: (0..top)
                .map(|i| if i == 0 { alternative(t, -0.25) } else { alternative(&format!("alt{i}"), -1.0 - i as f64) })
                .collect(),
        })
        .collect()
}

/// The full answer text before any prefill or `max_tokens` cut.
pub(crate) fn full_text(model: &str, last_user_text: &str) -> String {
    format!("Hello from {model}. You said: {}", echoed(last_user_text)).trim_end().to_owned()
}

/// The first words of the last user text, as the answer repeats them.
fn echoed(last_user_text: &str) -> String {
    last_user_text.split_whitespace().take(ECHOED_WORDS).collect::<Vec<_>>().join(" ")
}

/// The text the prompt asks for: free text, or compact JSON of the shape asked (a JSON object
/// holds the free text; a schema's strings are the prompt's words).
fn answer_text(prompt: &Prompt) -> String {
    match &prompt.format {
        None => full_text(&prompt.model, &prompt.last_user_text),
        Some(Shape::JsonObject) => {
            serde_json::json!({ "answer": full_text(&prompt.model, &prompt.last_user_text) }).to_string()
        }
        Some(Shape::JsonSchema(s)) => schema::generate(s, &echoed(&prompt.last_user_text)).to_string(),
    }
}

/// A tool's arguments: values for its schema. A schema that asks nothing of them
/// (`{"type": "object"}`) gets `{"input": <last user text>}`, which shows what the model was asked.
fn arguments(parameters: &Value, last_user_text: &str) -> Value {
    if schema::is_open_object(parameters) {
        serde_json::json!({ "input": last_user_text })
    } else {
        schema::generate(parameters, &echoed(last_user_text))
    }
}

fn text_reply(prompt: &Prompt) -> Reply {
    let full = answer_text(prompt);
    // the model continues the prefill: return only what comes after it
    let repeated;
    let rest = match (&prompt.prefill, &prompt.instructed) {
        (Some(prefill), _) => full.strip_prefix(prefill.as_str()).unwrap_or(&full),
        (None, Some(partial)) => match full.strip_prefix(partial.as_str()) {
            Some(rest) => {
                // the last word of the partial answer again, then the rest
                let cut = partial.trim_end().rfind(char::is_whitespace).map_or(0, |i| i + 1);
                repeated = format!("{}{rest}", &partial[cut..]);
                repeated.as_str()
            }
            None => &full,
        },
        (None, None) => &full,
    };
    let (rest, mut finish) = match first_stop(rest, &prompt.stop) {
        Some((at, sequence)) => (&rest[..at], Finish::StopSequence(sequence.to_owned())),
        None => (rest, Finish::Stop),
    };
    // JSON has few spaces: a token is about four characters of it, as a tokenizer makes them
    let mut tokens =
        if prompt.format.is_some() { pieces(rest, rest.chars().count().div_ceil(4)) } else { tokens(rest) };
    if let Some(max) = prompt.max_tokens.and_then(|m| usize::try_from(m).ok())
        && tokens.len() > max
    {
        tokens.truncate(max);
        finish = Finish::Length;
    }
    Reply::Text { tokens, finish }
}

/// Where the earliest stop sequence starts in `text`, and which one it is.
fn first_stop<'a>(text: &str, stop: &'a [String]) -> Option<(usize, &'a str)> {
    stop.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str()).map(|at| (at, s.as_str()))).min()
}

/// The tool to call, if any, and the schema of its arguments.
fn tool_to_call(prompt: &Prompt) -> Option<(String, &Value)> {
    let first = prompt.tools.first()?;
    let chosen = match &prompt.tool_choice {
        ToolMode::None => return None,
        ToolMode::Required => first,
        ToolMode::Named(name) => match prompt.tools.iter().find(|t| &t.name == name) {
            Some(tool) => tool,
            // a name no tool has: the caller's wire decides whether that is an error
            None => return Some((name.clone(), &Value::Null)),
        },
        ToolMode::Auto => {
            let command = prompt.last_user_text.trim_start().strip_prefix("/tool")?;
            if !prompt.ends_with_user_text || command.starts_with(|c: char| !c.is_whitespace()) {
                return None;
            }
            // `/tool NAME ...` picks a declared tool by name
            let named = command.split_whitespace().next().and_then(|w| prompt.tools.iter().find(|t| t.name == w));
            named.unwrap_or(first)
        }
    };
    Some((chosen.name.clone(), &chosen.parameters))
}

/// Splits text into tokens, each a word with the whitespace before it; trailing whitespace is
/// dropped. Concatenated, the tokens give back the text up to its last word.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for ch in text.chars() {
        if ch.is_whitespace() && in_word {
            out.push(std::mem::take(&mut current));
            in_word = false;
        }
        in_word |= !ch.is_whitespace();
        current.push(ch);
    }
    if in_word {
        out.push(current);
    }
    out
}

/// Splits `text` into `n` pieces of about equal length (fewer when it is shorter than `n`).
pub(crate) fn pieces(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The model's context window: the provider catalog's, 64 for `*-tiny`, else 128,000.
pub(crate) fn context_window(protocol: Protocol, model: &str) -> u64 {
    if model.ends_with("-tiny") {
        return TINY_CONTEXT_WINDOW;
    }
    ProviderProfile::builtin(protocol.as_str())
        .and_then(|p| p.model(model).map(|m| m.context_window))
        .unwrap_or(DEFAULT_CONTEXT_WINDOW)
}

fn check_prefill(model: &str, prefill: &str) -> Result<(), Reject> {
    if !supports_prefill(model) {
        return Err(Reject::invalid("Prefilling assistant messages is not supported for this model."));
    }
    if prefill.ends_with(char::is_whitespace) {
        return Err(Reject::invalid("messages: final assistant content cannot end with trailing whitespace"));
    }
    Ok(())
}

/// Claude 4.6 and later reject prefill; so does any catalog entry that says so.
pub(crate) fn supports_prefill(model: &str) -> bool {
    let catalog = ProviderProfile::builtin(Protocol::Anthropic.as_str()).and_then(|p| p.model(model).cloned());
    if let Some(flag) = catalog.and_then(|m| m.supports_prefill) {
        return flag;
    }
    match claude_version(model) {
        Some(version) => version < (4, 6),
        None => true,
    }
}

/// `(major, minor)` of a Claude model name: `claude-sonnet-4-6` → (4, 6), `claude-3-5-haiku-20241022`
/// → (3, 5), `claude-sonnet-5` → (5, 0). Date suffixes are not versions.
fn claude_version(model: &str) -> Option<(u32, u32)> {
    let rest = model.strip_prefix("claude-")?;
    let mut numbers = rest.split('-').skip_while(|p| !is_version_part(p));
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next().filter(|p| is_version_part(p)).and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn is_version_part(part: &str) -> bool {
    !part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn prompt(model: &str, text: &str) -> Prompt {
        Prompt {
            model: model.into(),
            last_user_text: text.into(),
            ends_with_user_text: true,
            input_chars: text.chars().count(),
            ..Prompt::default()
        }
    }

    fn open_tool(name: &str) -> ToolSpec {
        ToolSpec { name: name.into(), parameters: serde_json::json!({ "type": "object" }) }
    }

    #[test]
    fn tokens_keep_leading_whitespace_and_rebuild_the_text() {
        assert_eq!(tokens("Hello from m."), vec!["Hello", " from", " m."]);
        assert_eq!(tokens(" You  said:\nhi "), vec![" You", "  said:", "\nhi"]);
        assert_eq!(tokens("om m."), vec!["om", " m."]);
        assert!(tokens("   ").is_empty());
    }

    #[test]
    fn echoes_the_first_twelve_words() {
        let text = "one two three four five six seven eight nine ten eleven twelve thirteen";
        assert_eq!(
            full_text("m", text),
            "Hello from m. You said: one two three four five six seven eight nine ten eleven twelve"
        );
        assert_eq!(full_text("m", "  "), "Hello from m. You said:");
    }

    #[test]
    fn max_tokens_cuts_with_length() {
        let mut p = prompt("m", "hi there");
        p.max_tokens = Some(3);
        let a = answer(Protocol::Openai, &p).unwrap();
        assert_eq!(
            a.reply,
            Reply::Text { tokens: vec!["Hello".into(), " from".into(), " m.".into()], finish: Finish::Length }
        );
        assert_eq!(a.output_tokens, 3);
        p.max_tokens = Some(7);
        let a = answer(Protocol::Openai, &p).unwrap();
        assert!(matches!(a.reply, Reply::Text { finish: Finish::Stop, .. }));
        assert_eq!(a.text(), "Hello from m. You said: hi there");
    }

    #[test]
    fn stop_sequences_end_the_text_before_them() {
        let mut p = prompt("m", "one two three");
        p.stop = vec!["three".into(), " two".into(), String::new()];
        let a = answer(Protocol::Openai, &p).unwrap();
        assert_eq!(a.text(), "Hello from m. You said: one");
        assert!(matches!(a.reply, Reply::Text { finish: Finish::StopSequence(ref s), .. } if s == " two"));
        assert_eq!(a.output_tokens, 6);
    }

    #[test]
    fn prefill_returns_only_the_continuation() {
        let mut p = prompt("claude-sonnet-4-5", "hi");
        p.prefill = Some("Hello from claude-sonnet-4-5. You".into());
        let a = answer(Protocol::Anthropic, &p).unwrap();
        assert_eq!(a.text(), " said: hi");
        assert_eq!(a.output_tokens, 2);
        p.prefill = Some("Something else".into());
        assert_eq!(answer(Protocol::Anthropic, &p).unwrap().text(), "Hello from claude-sonnet-4-5. You said: hi");
        p.prefill = Some("Hello ".into());
        assert!(matches!(answer(Protocol::Anthropic, &p), Err(Reject::Invalid { .. })));
    }

    #[test]
    fn prefill_support_by_model_version() {
        assert!(supports_prefill("claude-sonnet-4-5"));
        assert!(supports_prefill("claude-3-5-haiku-20241022"));
        assert!(supports_prefill("claude-sonnet-4-20250514"));
        assert!(supports_prefill("sim-model"));
        assert!(!supports_prefill("claude-sonnet-4-6"));
        assert!(!supports_prefill("claude-opus-4-6"));
        assert!(!supports_prefill("claude-haiku-4-7-tiny"));
        assert!(!supports_prefill("claude-sonnet-5"));
        assert!(!supports_prefill("claude-opus-5-1"));
    }

    #[test]
    fn context_windows() {
        assert_eq!(context_window(Protocol::Openai, "gpt-4.1"), 1_047_576);
        assert_eq!(context_window(Protocol::Anthropic, "claude-sonnet-4-5"), 200_000);
        assert_eq!(context_window(Protocol::Openai, "whatever"), 128_000);
        assert_eq!(context_window(Protocol::Openai, "gpt-4.1-tiny"), 64);
        let p = prompt("x-tiny", &"word ".repeat(60));
        assert_eq!(answer(Protocol::Openai, &p), Err(Reject::ContextExceeded { limit: 64, tokens: 75 }));
    }

    #[test]
    fn tool_calls_when_forced_or_asked() {
        let mut p = prompt("m", "/tool lookup please");
        p.tools = vec![open_tool("search"), open_tool("lookup")];
        let call = |p: &Prompt| match answer(Protocol::Openai, p).unwrap().reply {
            Reply::Tool { name, input } => Some((name, input.to_string())),
            Reply::Text { .. } => None,
        };
        assert_eq!(call(&p), Some(("lookup".into(), r#"{"input":"/tool lookup please"}"#.into())));
        p.ends_with_user_text = false;
        assert_eq!(call(&p), None);
        p.tool_choice = ToolMode::Required;
        assert_eq!(call(&p).map(|c| c.0), Some("search".into()));
        p.tool_choice = ToolMode::Named("lookup".into());
        assert_eq!(call(&p).map(|c| c.0), Some("lookup".into()));
        p.tool_choice = ToolMode::None;
        assert_eq!(call(&p), None);
        let mut q = prompt("m", "/toolbox");
        q.tools = vec![open_tool("search")];
        assert_eq!(call(&q), None);
    }

    #[test]
    fn json_is_answered_when_asked_in_pieces_and_cut_like_text() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": { "city": { "type": "string" }, "unit": { "enum": ["c", "f"] } },
            "required": ["city", "unit"],
        });
        let mut p = prompt("m", "Weather in Paris");
        p.format = Some(Shape::JsonSchema(schema));
        let a = answer(Protocol::Openai, &p).unwrap();
        assert_eq!(a.text(), r#"{"city":"Weather in Paris","unit":"c"}"#);
        let Reply::Text { tokens, finish } = &a.reply else { unreachable!() };
        assert_eq!(tokens[..2], ["{\"ci".to_owned(), "ty\":".to_owned()]);
        assert!(tokens.iter().all(|t| t.chars().count() <= 4), "{tokens:?}");
        assert_eq!(*finish, Finish::Stop);
        assert_eq!(a.output_tokens, 10);
        // a prefilled brace is continued, as Claude does
        p.prefill = Some("{".into());
        assert_eq!(answer(Protocol::Anthropic, &p).unwrap().text(), r#""city":"Weather in Paris","unit":"c"}"#);
        // cut short, the JSON is cut short: as a model's is
        p.prefill = None;
        p.max_tokens = Some(3);
        let a = answer(Protocol::Openai, &p).unwrap();
        assert_eq!(a.text(), r#"{"city":"Wea"#);
        assert!(matches!(a.reply, Reply::Text { finish: Finish::Length, .. }));

        p.max_tokens = None;
        p.format = Some(Shape::JsonObject);
        let v: Value = serde_json::from_str(&answer(Protocol::Openai, &p).unwrap().text()).unwrap();
        assert_eq!(v, serde_json::json!({ "answer": "Hello from m. You said: Weather in Paris" }));
    }

    #[test]
    fn a_forced_tool_gets_arguments_for_its_schema() {
        let mut p = prompt("m", "Weather in Paris");
        let parameters = serde_json::json!({
            "type": "object",
            "properties": { "city": { "type": "string" }, "days": { "type": "integer", "minimum": 1 } },
            "required": ["city"],
        });
        p.tools = vec![open_tool("search"), ToolSpec { name: "weather".into(), parameters }];
        p.tool_choice = ToolMode::Named("weather".into());
        let a = answer(Protocol::Anthropic, &p).unwrap();
        let expected = serde_json::json!({ "city": "Weather in Paris", "days": 1 });
        assert_eq!(a.reply, Reply::Tool { name: "weather".into(), input: expected });
        // a JSON format does not change a tool call
        p.format = Some(Shape::JsonObject);
        assert!(matches!(answer(Protocol::Openai, &p).unwrap().reply, Reply::Tool { .. }));
        // an open schema is answered with what the model was asked
        p.tool_choice = ToolMode::Required;
        let input = serde_json::json!({ "input": "Weather in Paris" });
        assert_eq!(answer(Protocol::Openai, &p).unwrap().reply, Reply::Tool { name: "search".into(), input });
    }

    #[test]
    fn pieces_split_evenly() {
        assert_eq!(pieces("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(pieces("ab", 3), vec!["a", "b"]);
        assert!(pieces("", 3).is_empty());
    }
}
