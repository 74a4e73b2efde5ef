//! A scripted in-memory provider: each call follows the next step of its model's script.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchyard::provider::{Call, ChatStream, Protocol, Provider};
use switchyard::{ChatResponse, ErrorClass, FinishReason, ProviderError, StreamEvent, Usage};

/// What one call does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer with this text.
    Ok(&'static str),
    /// Fail with this class and status.
    Fail(ErrorClass, u16),
    /// Fail with a full error.
    Error(ProviderError),
    /// Never answer.
    Hang,
    /// Wait, then do the next step.
    Delay(Duration, Box<Step>),
    /// Stream these text pieces, then fail with this class (no Finish).
    StreamThenFail(Vec<&'static str>, ErrorClass),
}

/// A provider that follows a script per model; when a model's script is empty it answers
/// `default` (Ok("ok") unless set).
#[derive(Debug)]
pub struct Scripted {
    name: String,
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    default: Mutex<Step>,
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl Scripted {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Scripted {
            name: name.into(),
            scripts: Mutex::default(),
            default: Mutex::new(Step::Ok("ok")),
            calls: Mutex::default(),
        })
    }

    pub fn script(&self, model: &str, steps: impl IntoIterator<Item = Step>) {
        self.scripts.lock().unwrap().entry(model.into()).or_default().extend(steps);
    }

    pub fn set_default(&self, step: Step) {
        *self.default.lock().unwrap() = step;
    }

    /// Calls made, per model.
    pub fn calls(&self, model: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|(m, _)| m == model).count()
    }

    pub fn total_calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The last message texts of each call to `model`.
    pub fn last_messages(&self, model: &str) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().iter().filter(|(m, _)| m == model).map(|(_, msgs)| msgs.clone()).collect()
    }

    fn next(&self, call: &Call<'_>) -> Step {
        self.calls
            .lock()
            .unwrap()
            .push((call.model.to_owned(), call.request.messages.iter().map(|m| m.text_content()).collect()));
        let step = self.scripts.lock().unwrap().get_mut(call.model).and_then(VecDeque::pop_front);
        step.unwrap_or_else(|| self.default.lock().unwrap().clone())
    }

    fn error(&self, class: ErrorClass, status: u16) -> ProviderError {
        ProviderError::new(class, self.name.clone(), format!("scripted {class}")).with_status(status)
    }

    fn response(&self, model: &str, text: &str) -> ChatResponse {
        let mut answer = ChatResponse::new(self.name.clone(), model, text, FinishReason::Stop);
        answer.usage = Usage::new(10, 2);
        answer
    }
}

async fn resolve(mut step: Step) -> Step {
    while let Step::Delay(d, next) = step {
        tokio::time::sleep(d).await;
        step = *next;
    }
    step
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn protocol(&self) -> Protocol {
        Protocol::Openai
    }

    async fn chat(&self, call: Call<'_>) -> Result<ChatResponse, ProviderError> {
        match resolve(self.next(&call)).await {
            Step::Ok(text) => Ok(self.response(call.model, text)),
            Step::Fail(class, status) => Err(self.error(class, status)),
            Step::Error(e) => Err(e),
            Step::Hang => std::future::pending().await,
            Step::StreamThenFail(_, class) => Err(self.error(class, 200)),
            Step::Delay(..) => unreachable!(),
        }
    }

    async fn chat_stream(&self, call: Call<'_>) -> Result<ChatStream, ProviderError> {
        let step = resolve(self.next(&call)).await;
        let items: Vec<Result<StreamEvent, ProviderError>> = match step {
            Step::Ok(text) => {
                let mut v: Vec<Result<StreamEvent, ProviderError>> =
                    text.split_inclusive(' ').map(|w| Ok(StreamEvent::TextDelta { text: w.to_owned() })).collect();
                v.push(Ok(StreamEvent::Usage(Usage::new(10, 2))));
                v.push(Ok(StreamEvent::Finish { reason: FinishReason::Stop }));
                v
            }
            Step::Fail(class, status) => return Err(self.error(class, status)),
            Step::Error(e) => return Err(e),
            Step::Hang => std::future::pending().await,
            Step::StreamThenFail(pieces, class) => {
                let mut v: Vec<Result<StreamEvent, ProviderError>> =
                    pieces.into_iter().map(|w| Ok(StreamEvent::TextDelta { text: w.to_owned() })).collect();
                v.push(Err(self.error(class, 200)));
                v
            }
            Step::Delay(..) => unreachable!(),
        };
        Ok(Box::pin(futures::stream::iter(items)))
    }
}
