//! Status pages, as the simulator serves them: `GET /status/{page}/api/v2/summary.json` in the
//! Statuspage format, all operational until a test scripts an incident, a failure or a delay
//! ([`SimServer::set_status_page`](super::SimServer::set_status_page)).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use crate::sync::lock;

/// What one simulated status page answers.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPageScript {
    indicator: String,
    description: String,
    incidents: Vec<(String, String, String)>,
    http_status: u16,
    raw: Option<String>,
    delay: Duration,
}

impl Default for StatusPageScript {
    fn default() -> Self {
        StatusPageScript::operational()
    }
}

impl StatusPageScript {
    /// All systems operational, no incident.
    pub fn operational() -> Self {
        StatusPageScript {
            indicator: "none".into(),
            description: "All Systems Operational".into(),
            incidents: Vec::new(),
            http_status: 200,
            raw: None,
            delay: Duration::ZERO,
        }
    }

    /// An unresolved incident `name` of `impact` (`minor`, `major`, `critical`) that started at
    /// `started_at` (RFC 3339); the page's indicator becomes the worst impact listed.
    pub fn incident(mut self, name: &str, impact: &str, started_at: &str) -> Self {
        self.incidents.push((name.into(), impact.into(), started_at.into()));
        let rank = |i: &str| ["none", "minor", "major", "critical"].iter().position(|x| *x == i).unwrap_or(0);
        if rank(impact) > rank(&self.indicator) {
            self.indicator = impact.into();
            self.description = match impact {
                "minor" => "Partially Degraded Service",
                "major" => "Partial System Outage",
                _ => "Major System Outage",
            }
            .into();
        }
        self
    }

    /// Answers with this HTTP status and body instead (a broken page).
    pub fn failing(status: u16, body: &str) -> Self {
        StatusPageScript { http_status: status, raw: Some(body.into()), ..StatusPageScript::operational() }
    }

    /// Waits this long before answering.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The summary's JSON.
    fn summary(&self) -> Value {
        let incidents: Vec<Value> = self
            .incidents
            .iter()
            .enumerate()
            .map(|(i, (name, impact, started))| {
                json!({
                    "id": format!("inc{i}"),
                    "name": name,
                    "status": "investigating",
                    "impact": impact,
                    "created_at": started,
                    "started_at": started,
                    "updated_at": started,
                    "shortlink": format!("https://stspg.io/sim{i}"),
                    "incident_updates": [],
                    "components": [],
                })
            })
            .collect();
        let api = if self.indicator == "none" { "operational" } else { "major_outage" };
        json!({
            "page": {"id": "sim", "name": "Simulated provider", "url": "http://localhost", "time_zone": "Etc/UTC"},
            "components": [
                {"id": "api", "name": "API", "status": api, "group": false},
                {"id": "web", "name": "Web app", "status": "operational", "group": false},
            ],
            "incidents": incidents,
            "scheduled_maintenances": [],
            "status": {"indicator": self.indicator, "description": self.description},
        })
    }
}

/// The scripted pages, by name, and how often each was read.
#[derive(Debug, Default)]
pub(crate) struct StatusPages(Mutex<HashMap<String, StatusPageScript>>, Mutex<HashMap<String, usize>>);

impl StatusPages {
    pub(crate) fn set(&self, page: &str, script: StatusPageScript) {
        lock(&self.0).insert(page.to_owned(), script);
    }

    /// How many times `page` was read.
    pub(crate) fn reads(&self, page: &str) -> usize {
        lock(&self.1).get(page).copied().unwrap_or(0)
    }

    /// The answer to a read of `page`: status, body, and the wait before it.
    pub(crate) fn answer(&self, page: &str) -> (u16, String, Duration) {
        *lock(&self.1).entry(page.to_owned()).or_default() += 1;
        let script = lock(&self.0).get(page).cloned().unwrap_or_default();
        let body = script.raw.clone().unwrap_or_else(|| script.summary().to_string());
        (script.http_status, body, script.delay)
    }
}
