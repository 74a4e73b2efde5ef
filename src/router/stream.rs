//! Streaming through the router: failures before the first content are retried or failed over
//! invisibly; after it, the answer continues on a target that accepts assistant prefill (stitched
//! into one stream), or restarts after a [`StreamEvent::Restart`] when the caller allows it, or ends
//! with a `stream_interrupted` error that carries the partial text.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::engine::{Ask, AttemptFuture, Plan};
use super::events::RouterEvent;
use super::outcome::{Attempt, AttemptOutcome, RouteFailure, RouterError};
use super::resume::{self, Seam};
use super::{Inner, Router};
use crate::chat::{ChatRequest, FinishReason, StreamCollector, StreamEvent, Usage};
use crate::error::{ErrorClass, Partial, ProviderError};
use crate::policy::{Holdback, Resume, RoutePolicy, TargetPolicy};
use crate::provider::{Call, ChatStream, Provider};

/// Options for [`Router::chat_stream_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// After content was delivered and no target can continue it, restart the answer on the next
    /// target, preceded by [`StreamEvent::Restart`] (the consumer must discard what it received).
    /// Off by default: a consumer that cannot take back what it showed gets an error instead.
    pub allow_restart: bool,
}

/// What a finished stream reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSummary {
    /// The route.
    pub route: String,
    /// Provider that finished the answer.
    pub provider: String,
    /// Model that finished the answer.
    pub model: String,
    /// Why the model stopped.
    pub finish_reason: FinishReason,
    /// Usage of the serving model (for a continued answer, the last model's).
    pub usage: Option<Usage>,
    /// Every attempt.
    pub attempts: Vec<Attempt>,
    /// The answer was continued from a checkpoint after a failure midway (on the same target or
    /// another).
    pub continued: bool,
    /// How the last continuation was made (`prefill` or `instructed`), if there was one.
    pub resumed_with: Option<Resume>,
    /// Characters of answer the consumer had when the last continuation began: the text carried
    /// over into it rather than generated again.
    pub carried_chars: usize,
    /// The answer was restarted on another target.
    pub restarted: bool,
}

impl StreamSummary {
    /// What the answer cost in USD, every attempt included (a stream cut after content is billed
    /// for what it generated); `None` when no attempt's model has prices.
    pub fn cost_usd(&self) -> Option<f64> {
        super::outcome::costs(&self.attempts).0
    }

    /// The part of [`StreamSummary::cost_usd`] billed for attempts that failed.
    pub fn failed_cost_usd(&self) -> Option<f64> {
        super::outcome::costs(&self.attempts).1
    }
}

enum Msg {
    Serving { provider: String, model: String, dropped: Vec<crate::wire::Unsupported> },
    Event(StreamEvent),
    Error(RouterError),
    Done(Box<StreamSummary>),
}

/// The failover driver of one stream.
type Driver = Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A routed answer as a stream of events. Ends after [`StreamEvent::Finish`] or an error.
/// Dropping it cancels the request (and frees any breaker probe slot it held).
///
/// The failover driver has no task of its own: whoever polls the stream drives it, so an event
/// reaches the consumer without a hand-off between tasks (threads), and nothing runs once the
/// stream is dropped.
pub struct RoutedStream {
    rx: mpsc::Receiver<Msg>,
    driver: Option<Driver>,
    serving: Option<(String, String)>,
    dropped: Vec<crate::wire::Unsupported>,
    summary: Option<StreamSummary>,
}

impl std::fmt::Debug for RoutedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedStream").field("serving", &self.serving).field("summary", &self.summary).finish()
    }
}

impl RoutedStream {
    /// The provider and model currently serving (known once the first event arrived).
    pub fn served_by(&self) -> Option<(&str, &str)> {
        self.serving.as_ref().map(|(p, m)| (p.as_str(), m.as_str()))
    }

    /// Request fields the serving target's wire could not carry and that were left out (known
    /// once the first event arrived; see [`crate::RoutedResponse::dropped`]).
    pub fn dropped(&self) -> &[crate::wire::Unsupported] {
        &self.dropped
    }

    /// The summary, once the stream has finished successfully.
    pub fn summary(&self) -> Option<&StreamSummary> {
        self.summary.as_ref()
    }
}

impl Stream for RoutedStream {
    type Item = Result<StreamEvent, RouterError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // at most two rounds without a message: one that drives, one that reads what it sent
        let mut idle_rounds = 0;
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Msg::Serving { provider, model, dropped })) => {
                    self.serving = Some((provider, model));
                    self.dropped = dropped;
                    continue;
                }
                Poll::Ready(Some(Msg::Done(s))) => {
                    self.summary = Some(*s);
                    continue;
                }
                Poll::Ready(Some(Msg::Event(e))) => return Poll::Ready(Some(Ok(e))),
                Poll::Ready(Some(Msg::Error(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {}
            }
            idle_rounds += 1;
            if idle_rounds > 1 {
                return Poll::Pending;
            }
            let Some(driver) = self.driver.as_mut() else { return Poll::Pending };
            if driver.as_mut().poll(cx).is_ready() {
                // done: its sender is gone, so the channel ends once drained
                self.driver = None;
            }
        }
    }
}

impl Router {
    /// Streams the answer to `request` along `route` (no restarts: see [`StreamOptions`]).
    pub async fn chat_stream(&self, route: &str, request: ChatRequest) -> Result<RoutedStream, RouterError> {
        self.chat_stream_with(route, request, StreamOptions::default()).await
    }

    /// Streams the answer with options. Fails at once for an unknown route; every other failure
    /// arrives in the stream.
    pub async fn chat_stream_with(
        &self,
        route: &str,
        request: ChatRequest,
        options: StreamOptions,
    ) -> Result<RoutedStream, RouterError> {
        self.open_stream(route, (request, None), options)
    }

    /// Streams the answer to a request decoded from a caller's body ([`crate::wire::decode`]),
    /// along the route its `model` names. A target of the caller's wire is sent the caller's
    /// body itself (see [`crate::wire::Original`]), not an encoding of `decoded.request`.
    /// `decoded.stream` is not read: this call streams.
    pub async fn chat_stream_decoded(
        &self,
        decoded: crate::wire::Decoded,
        options: StreamOptions,
    ) -> Result<RoutedStream, RouterError> {
        self.open_stream(&decoded.route, (decoded.request, decoded.original), options)
    }

    fn open_stream(
        &self,
        route: &str,
        request: (ChatRequest, Option<crate::wire::Original>),
        options: StreamOptions,
    ) -> Result<RoutedStream, RouterError> {
        let snap = self.inner.snapshot();
        if snap.policy.route(route).is_none() {
            return Err(RouterError::UnknownRoute(route.to_owned()));
        }
        let (tx, rx) = mpsc::channel(64);
        let inner = self.inner.clone();
        let route = route.to_owned();
        let span = super::spans::info(|| crate::request_span!(route, true));
        let driver = async move { drive(&inner, route, request, options, &tx).await }
            .instrument(span.unwrap_or_else(tracing::Span::none));
        // the request's meter, if its caller set one, counts what the stream's attempts cost
        let driver: Driver = match super::meter::current() {
            Some(meter) => Box::pin(super::meter::metered(meter, driver)),
            None => Box::pin(driver),
        };
        Ok(RoutedStream { rx, driver: Some(driver), serving: None, dropped: Vec::new(), summary: None })
    }
}

/// The first events of a stream, up to its first content, and the rest of it.
type Prefetched = (Vec<StreamEvent>, ChatStream);

/// Why a stream that ran into its attempt's deadline ended.
const STREAM_DEADLINE: &str = "the stream did not finish within the attempt timeout";

/// Whether `e` ends the text the seam of a continuation may be holding (thinking, usage and the
/// like may come before or between its pieces).
fn ends_text(e: &StreamEvent) -> bool {
    !matches!(
        e,
        StreamEvent::Envelope { .. }
            | StreamEvent::Usage(_)
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::SignatureDelta { .. }
            | StreamEvent::RedactedThinking { .. }
            | StreamEvent::Logprobs { .. }
            | StreamEvent::RateLimit(_)
    )
}

/// What a holdback window counts: the deltas of the answer (about a token each).
fn is_held_content(e: &StreamEvent) -> bool {
    e.is_content() && !matches!(e, StreamEvent::Finish { .. })
}

/// The first event of an attempt that reaches the consumer: text, a tool call or the end.
/// Thinking is held back with the preamble until then, so that a failure while the model thinks
/// stays unseen (retried or failed over from scratch), though it counts as the first token.
fn starts_answer(e: &StreamEvent) -> bool {
    matches!(e, StreamEvent::TextDelta { .. } | StreamEvent::ToolCallDelta { .. } | StreamEvent::Finish { .. })
}

/// The attempt of a streamed answer on a target of `route`: [`open`] with the target's holdback
/// window.
fn opener(
    route: &RoutePolicy,
) -> impl for<'a> Fn(&'a dyn Provider, Call<'a>, &'a TargetPolicy) -> AttemptFuture<'a, Prefetched> + '_ {
    move |p, call, target| {
        // the route's name only for the metric, and only when metrics are on
        let route_name = super::metrics::enabled().then(|| route.name.clone());
        open(p, call, target.holdback, route_name)
    }
}

/// Opens a stream and reads it up to its first content (or, with a holdback window, up to the
/// window's end), so that a failure before then counts as a failed attempt: retried or failed
/// over unseen, from scratch.
fn open<'a>(
    p: &'a dyn Provider,
    call: Call<'a>,
    window: Option<Holdback>,
    route: Option<String>,
) -> AttemptFuture<'a, Prefetched> {
    Box::pin(async move {
        let started = Instant::now();
        let model = call.model;
        let mut stream = p.chat_stream(call).await?;
        let mut buffer = Vec::new();
        let mut held = 0u32;
        let mut timed = route.is_none();
        loop {
            match stream.next().await {
                Some(Ok(e)) => {
                    if !timed && e.is_content() {
                        timed = true;
                        if let Some(route) = &route {
                            super::metrics::first_token(route, p.name(), model, started.elapsed());
                        }
                    }
                    let done = match window {
                        None => starts_answer(&e),
                        Some(w) => {
                            held += u32::from(is_held_content(&e));
                            matches!(e, StreamEvent::Finish { .. }) || matches!(w, Holdback::Events(n) if held >= n)
                        }
                    };
                    buffer.push(e);
                    if done {
                        return Ok((buffer, stream));
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(ProviderError::new(
                        ErrorClass::StreamInterrupted,
                        p.name().to_owned(),
                        "stream ended before any content",
                    ));
                }
            }
        }
    })
}

/// What the serving attempt of a stream is billed: the usage the stream reported and the content
/// deltas it generated. Dropped while `open` (the consumer went away mid-stream), it records the
/// attempt, `cancelled`, billed for what the provider read and generated up to then.
struct Bill<'a> {
    usage: Option<Usage>,
    deltas: u64,
    /// Until the attempt is recorded otherwise: the router, the route, the request and the target.
    open: Option<(&'a Inner, &'a RoutePolicy, &'a ChatRequest, &'a TargetPolicy)>,
    /// Whether the attempt is a breaker probe, and a hedge.
    flags: (bool, bool),
    started: Instant,
}

impl Bill<'_> {
    /// The prompt the provider read (its own count when the stream gave one) and what it
    /// generated (its count, else the deltas).
    fn billed(&self, request: &ChatRequest) -> Usage {
        let usage = self.usage;
        Usage {
            input_tokens: usage
                .map(|u| u.input_tokens)
                .filter(|&n| n > 0)
                .unwrap_or_else(|| request.estimated_prompt_tokens()),
            output_tokens: usage.map(|u| u.output_tokens).filter(|&n| n > 0).unwrap_or(self.deltas),
            ..usage.unwrap_or_default()
        }
    }
}

impl Drop for Bill<'_> {
    fn drop(&mut self) {
        let Some((inner, route, request, target)) = self.open.take() else { return };
        let billed = self.billed(request);
        let op = super::engine::Op::Chat;
        let a = Attempt {
            output_tokens: Some(billed.output_tokens),
            ..super::engine::cancelled(target, self.flags, self.started.elapsed(), op, billed)
        };
        tracing::info!(provider = %a.provider, model = %a.model, "attempt cancelled mid-stream: the stream was dropped");
        inner.emit_attempt(&route.name, super::engine::Op::Chat, &a);
    }
}

async fn send(tx: &mpsc::Sender<Msg>, msg: Msg) -> bool {
    tx.send(msg).await.is_ok()
}

async fn drive(
    inner: &Arc<Inner>,
    route_name: String,
    (request, caller_body): (ChatRequest, Option<crate::wire::Original>),
    options: StreamOptions,
    tx: &mpsc::Sender<Msg>,
) {
    let snap = inner.snapshot();
    let start = Instant::now();
    let first = super::engine::first_success(
        inner,
        &snap,
        &route_name,
        (&request, caller_body.as_ref()),
        start,
        opener,
        super::engine::Op::Chat,
    );
    let (mut plan, mut current) = match first.await {
        Ok(first) => first,
        Err(e) => {
            super::spans::failed(&tracing::Span::current(), e.class());
            let _ = send(tx, Msg::Error(e)).await;
            return;
        }
    };

    let mut delivered = StreamCollector::new();
    let mut continued = false;
    let (mut resumed_with, mut carried_chars) = (None, 0);
    let mut restarted = false;
    let mut original_failure: Option<ProviderError> = None;
    loop {
        let lease_target = current.lease.target().clone();
        let serving = Msg::Serving {
            provider: lease_target.provider.clone(),
            model: lease_target.model.clone(),
            dropped: plan.dropped(current.lease.index()),
        };
        if !send(tx, serving).await {
            return;
        }
        if current.resumed == Some(Resume::Prefill) {
            // the target took the prefill: remember it for next time
            current.lease.target_node().learn_prefill(true);
        }
        let (buffer, mut rest) = current.value;
        let attempt_deadline = current.lease.deadline;
        let enforced = current.lease.deadline_enforced;
        let mut pending: std::collections::VecDeque<StreamEvent> = buffer.into();
        // where a continuation joins what the consumer has: what it repeats is not relayed twice
        let mut seam = Seam::new(current.resumed, delivered.text());
        let (index, retries) = (current.lease.index(), current.retries);
        // what this attempt reported and generated, for its bill if it fails or is dropped
        let mut bill = Bill {
            usage: None,
            deltas: 0,
            open: Some((inner, plan.route, &request, &lease_target)),
            flags: current.lease.flags(),
            started: current.lease.started,
        };
        let failure: ProviderError = loop {
            let next = match pending.pop_front() {
                Some(e) => Some(Ok(e)),
                // the built-in adapters end their streams by the deadline on their own timer
                None if enforced => match rest.next().await {
                    Some(Err(e)) if e.class() == ErrorClass::Timeout && Instant::now() >= attempt_deadline => {
                        Some(Err(e.with_message(STREAM_DEADLINE)))
                    }
                    n => n,
                },
                None => match tokio::time::timeout_at(attempt_deadline, rest.next()).await {
                    Ok(n) => n,
                    Err(_) => Some(Err(ProviderError::new(
                        ErrorClass::Timeout,
                        lease_target.provider.clone(),
                        STREAM_DEADLINE,
                    ))),
                },
            };
            match next {
                Some(Ok(mut event)) => {
                    // counted before the seam, which may hold (or drop) what the model repeated
                    bill.deltas += u64::from(is_held_content(&event));
                    if !matches!(seam, Seam::Clear) {
                        if let StreamEvent::TextDelta { text } = &mut event {
                            *text = seam.text(std::mem::take(text));
                            if text.is_empty() {
                                continue;
                            }
                        } else if ends_text(&event) {
                            // the text is over: what the seam holds goes first
                            let held = seam.flush();
                            if !held.is_empty() {
                                let held = StreamEvent::TextDelta { text: held };
                                delivered.push(&held);
                                if !send(tx, Msg::Event(held)).await {
                                    return;
                                }
                            }
                        }
                    }
                    match &event {
                        // the router's to learn from, not the consumer's to see
                        StreamEvent::RateLimit(limit) => {
                            current.lease.learn_budget(inner, Some(limit));
                            continue;
                        }
                        StreamEvent::Usage(u) => bill.usage = Some(*u),
                        StreamEvent::Finish { reason } => {
                            let reason = *reason;
                            bill.open = None;
                            let (usage, deltas) = (bill.usage, bill.deltas);
                            let now = Instant::now();
                            let elapsed = now - current.lease.started;
                            // a stream that reported no usage is billed by its estimate and deltas
                            let billed = usage.unwrap_or_else(|| Usage::new(request.estimated_prompt_tokens(), deltas));
                            let attempt = current.lease.served(elapsed).priced(&lease_target, &billed);
                            inner.emit_attempt(&plan.route.name, super::engine::Op::Chat, &attempt);
                            plan.attempts.push(attempt);
                            current.lease.succeed(inner, usage, now, elapsed);
                            // the request's span (the driver runs in it) says what served it
                            let span = tracing::Span::current();
                            if !span.is_disabled() {
                                let (provider, model) = (&lease_target.provider, &lease_target.model);
                                let snap = inner.snapshot();
                                let who = (provider.as_str(), snap.policy.genai_provider_name(provider));
                                super::spans::served(&span, who, model, model, &billed);
                            }
                            delivered.push(&event);
                            if !send(tx, Msg::Event(event)).await {
                                return;
                            }
                            let summary = StreamSummary {
                                route: plan.route.name.clone(),
                                provider: lease_target.provider.clone(),
                                model: lease_target.model.clone(),
                                finish_reason: reason,
                                usage,
                                attempts: std::mem::take(&mut plan.attempts),
                                continued,
                                resumed_with,
                                carried_chars,
                                restarted,
                            };
                            let _ = send(tx, Msg::Done(Box::new(summary))).await;
                            return;
                        }
                        _ => {}
                    }
                    delivered.push(&event);
                    if !send(tx, Msg::Event(event)).await {
                        return;
                    }
                }
                Some(Err(e)) => break e,
                None => {
                    break ProviderError::new(
                        ErrorClass::StreamInterrupted,
                        lease_target.provider.clone(),
                        "stream ended without its terminal event",
                    );
                }
            }
        };

        // the stream failed after content reached the caller
        let effect = plan.route.actions.get(failure.class()).breaker;
        bill.open = None;
        // billed although the answer is finished elsewhere
        let billed = bill.billed(&request);
        let output_tokens = billed.output_tokens;
        let attempt = Attempt {
            class: Some(failure.class()),
            status: failure.status(),
            output_tokens: Some(output_tokens),
            ..current.lease.attempt(AttemptOutcome::Error, current.lease.started.elapsed())
        }
        .priced(&lease_target, &billed);
        tracing::info!(provider = %attempt.provider, model = %attempt.model, class = %failure.class(), status = ?failure.status(), "attempt failed mid-stream: {}", failure.message());
        inner.emit_attempt(&plan.route.name, super::engine::Op::Chat, &attempt);
        plan.attempts.push(attempt);
        current.lease.fail(inner, effect, &failure);
        let failure = failure.with_partial(delivered.partial());
        let original = original_failure.get_or_insert(failure.clone()).clone();
        let action = plan.route.actions.get(failure.class());

        // text can be continued; a tool call cut midway is never turned into prose
        let resumable = delivered.partial().tool_calls.is_empty() && !delivered.text().trim().is_empty();
        // the same target first while its class is retried and it has attempts left, then the
        // rest of the order while its class fails over
        // (as before any content: a server's x-should-retry has the last word, and the wait
        // before the same target again is its retry-after within the cap, else the backoff)
        let retryable = action.retry && failure.should_retry().is_none_or(|_| failure.retryable());
        let again = retryable && retries + 1 < lease_target.retry.max_attempts;
        let wait = match failure.retry_after() {
            Some(ra) if ra <= lease_target.retry.retry_after_cap => ra,
            _ => lease_target.retry.backoff(retries, rand::random::<f64>()),
        };
        // from here on the order goes on after the failed target, for a continuation or a restart
        plan.resume_after(index, retries + 1, again.then_some(wait), action.failover);
        let restarts_before = restarted;
        let next = if resumable && (again || action.failover) {
            let (prefill, instructed) = resume::continuations(&request, delivered.text());
            let ask = Ask::Resume { prefill: &prefill, instructed: &instructed };
            match plan.run(inner, ask, opener(plan.route)).await {
                Ok(s) => {
                    continued = true;
                    resumed_with = s.resumed;
                    carried_chars = delivered.text().chars().count();
                    let target = s.lease.target();
                    tracing::info!(
                        "gen_ai.provider.name" = %target.provider,
                        "gen_ai.request.model" = %target.model,
                        "switchyard.carried_chars" = carried_chars,
                        "resume"
                    );
                    let _ = inner.events.send(RouterEvent::Resume {
                        route: plan.route.name.clone(),
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        strategy: s.resumed,
                        carried_chars,
                    });
                    Some(s)
                }
                Err(_) if options.allow_restart && action.failover => {
                    let ask = Ask::Request(&request, caller_body.as_ref());
                    restart(inner, &mut plan, ask, &mut delivered, &mut restarted, tx).await
                }
                Err(_) => None,
            }
        } else if options.allow_restart && action.failover {
            let ask = Ask::Request(&request, caller_body.as_ref());
            restart(inner, &mut plan, ask, &mut delivered, &mut restarted, tx).await
        } else {
            None
        };
        if restarted && !restarts_before {
            // what a continuation carried over was thrown away with the rest
            (continued, resumed_with, carried_chars) = (false, None, 0);
        }
        match next {
            Some(s) => current = s,
            None => {
                let mut failure = interrupted(&plan, original, &delivered);
                inner.status.annotate(&mut failure);
                super::spans::failed(&tracing::Span::current(), failure.class);
                let _ = send(tx, Msg::Error(RouterError::Failed(Box::new(failure)))).await;
                return;
            }
        }
    }
}

/// Tells the consumer to discard what it has, then runs the rest of the plan from scratch.
async fn restart<'s>(
    inner: &Arc<Inner>,
    plan: &mut Plan<'s>,
    ask: Ask<'_>,
    delivered: &mut StreamCollector,
    restarted: &mut bool,
    tx: &mpsc::Sender<Msg>,
) -> Option<super::engine::Success<'s, Prefetched>> {
    plan.rewind_for_restart();
    let s = plan.run(inner, ask, opener(plan.route)).await.ok()?;
    if !send(tx, Msg::Event(StreamEvent::Restart { reason: "the answer restarts on another target".into() })).await {
        return None;
    }
    *delivered = StreamCollector::new();
    *restarted = true;
    Some(s)
}

/// The failure of a stream that delivered content and could not be completed.
fn interrupted(plan: &Plan<'_>, original: ProviderError, delivered: &StreamCollector) -> RouteFailure {
    let mut f = plan.failure();
    // the cause, not the symptom: an overloaded provider stays `overloaded`
    f.class = original.class();
    f.mid_stream = true;
    f.message = format!(
        "the answer was interrupted after {} characters and could not be continued: {}: {}",
        delivered.text().len(),
        original.class(),
        original.message()
    );
    f.provider = Some(original.provider().to_owned());
    f.status = original.status();
    f.error = Some(original.with_partial(Partial { text: delivered.text().to_owned(), ..delivered.partial() }));
    f
}
