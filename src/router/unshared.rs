//! The shared state when the crate is built without the `redis` feature: there is none. The policy
//! refuses `backend = "redis"` then, so no [`Shared`] is ever made; the types are uninhabited, and
//! the router's code reads the same with and without the feature.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use super::Inner;
use super::breaker::BreakerState;
use super::budget::Scope;
use super::events::Events;
use super::health::{FleetMember, SharedStateSnapshot};
use super::limiter::Denied;
use crate::policy::{Budget, Limits, OnStateError, StateSettings};
use crate::status_page::Summary;

/// Never made: see the module's documentation.
#[derive(Debug)]
pub(crate) enum Shared {}

/// Never made: see the module's documentation.
#[derive(Debug)]
pub(crate) enum SharedSlot {}

/// Never made: see the module's documentation.
#[derive(Debug)]
pub(crate) enum Unavailable {}

#[allow(clippy::unused_async)] // the same signatures as the Redis state's
impl Shared {
    pub(crate) fn new(_: &StateSettings, _: Events) -> Option<Shared> {
        None
    }

    pub(crate) fn settings(&self) -> &StateSettings {
        match *self {}
    }

    pub(crate) fn on_error(&self) -> OnStateError {
        match *self {}
    }

    pub(crate) async fn take(
        self: &Arc<Self>,
        _: &str,
        _: Option<&str>,
        _: Limits,
        _: u64,
        _: Duration,
    ) -> Result<Result<Option<SharedSlot>, Denied>, Unavailable> {
        match **self {}
    }

    pub(crate) fn charge_extra(self: &Arc<Self>, _: &str, _: Option<&str>, _: u32, _: u64) {
        match **self {}
    }

    pub(crate) fn snapshot(&self) -> SharedStateSnapshot {
        match *self {}
    }

    pub(crate) fn members(&self) -> Vec<FleetMember> {
        match *self {}
    }

    pub(crate) fn publish_breaker(self: &Arc<Self>, _: &str, _: Option<&str>, _: BreakerState, _: Option<Duration>) {
        match **self {}
    }

    pub(crate) fn publish_quota(self: &Arc<Self>, _: &str, _: &str, _: &crate::provider::RateLimit) {
        match **self {}
    }

    pub(crate) fn publish_pause(self: &Arc<Self>, _: &str, _: &str, _: Duration) {
        match **self {}
    }

    pub(crate) async fn probe_lease(&self, _: &str, _: Option<&str>, _: Duration) -> bool {
        match *self {}
    }

    pub(crate) fn follow_breakers(self: &Arc<Self>, _: Weak<Inner>) {
        match **self {}
    }

    pub(crate) fn spend_budget(self: &Arc<Self>, _: Weak<Inner>, _: Scope, _: Budget, _: f64, _: u64) {
        match **self {}
    }

    pub(crate) fn heartbeat(self: &Arc<Self>, _: Weak<Inner>) {
        match **self {}
    }

    pub(crate) fn announce(self: &Arc<Self>, _: &Inner) {
        match **self {}
    }

    pub(crate) async fn reads_status_page(&self, _: &str, _: Duration) -> bool {
        match *self {}
    }

    pub(crate) async fn leave_status_page(&self, _: &str, _: &Result<Summary, String>, _: Duration) {
        match *self {}
    }

    pub(crate) async fn status_page_found(&self, _: &str) -> Option<(Result<Summary, String>, SystemTime)> {
        match *self {}
    }
}
