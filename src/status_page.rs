//! Providers' public status pages, in the Statuspage format most of them publish
//! (`/api/v2/summary.json`: the page's indicator, its components and its unresolved incidents):
//! fetching one within bounds of time and size, and what the router keeps of it.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// The largest summary read: a page with hundreds of components and a few incidents is ~200 KB.
pub const MAX_SUMMARY_BYTES: usize = 1024 * 1024;

/// The path of the summary under a status page's address.
pub const SUMMARY_PATH: &str = "/api/v2/summary.json";

/// How bad things are, as a page's indicator or an incident's impact says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// All good (`none`).
    None,
    /// Scheduled maintenance in progress.
    Maintenance,
    /// Degraded or partly down (`minor`).
    Minor,
    /// A major outage (`major`).
    Major,
    /// A critical outage (`critical`).
    Critical,
    /// A value the format does not define.
    #[serde(other)]
    Unknown,
}

impl Severity {
    /// The name the format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Maintenance => "maintenance",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
            Severity::Unknown => "unknown",
        }
    }

    /// A major or critical outage: what `on_incident = "deprioritize"` acts on.
    pub fn is_outage(self) -> bool {
        matches!(self, Severity::Major | Severity::Critical)
    }

    /// How an error message says it: "major outage", "minor impact".
    fn phrase(self) -> &'static str {
        match self {
            Severity::Critical => "critical outage",
            Severity::Major => "major outage",
            Severity::Minor => "minor impact",
            Severity::Maintenance => "maintenance",
            Severity::None | Severity::Unknown => "impact not stated",
        }
    }
}

/// An unresolved incident on a provider's status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Its title ("Elevated error rates").
    pub name: String,
    /// Its impact.
    pub impact: Severity,
    /// Where it stands: `investigating`, `identified`, `monitoring`, ...
    pub status: String,
    /// When it started (RFC 3339, as the page wrote it), if stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Its page, if stated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shortlink: Option<String>,
}

impl Incident {
    /// "Elevated error rates (major outage since 12:03 UTC)".
    pub fn describe(&self) -> String {
        let since = self
            .started_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|t| {
                let text = humantime::format_rfc3339_seconds(t).to_string();
                // "2026-12-04T12:03:00Z" → "12:03"
                format!(" since {} UTC", text.get(11..16).unwrap_or(&text))
            })
            .unwrap_or_default();
        format!("{} ({}{since})", self.name, self.impact.phrase())
    }
}

/// A component that is not operational.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Its name ("API", "Chat Completions").
    pub name: String,
    /// Its status: `degraded_performance`, `partial_outage`, `major_outage`, `under_maintenance`.
    pub status: String,
}

/// What a status page said when it was last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The page's overall indicator.
    pub indicator: Severity,
    /// Its words for it ("Partial System Outage").
    pub description: String,
    /// Unresolved incidents.
    pub incidents: Vec<Incident>,
    /// Components that are not operational.
    pub degraded_components: Vec<Component>,
}

impl Summary {
    /// Whether the page reports a major or critical outage (its indicator, or an incident's
    /// impact).
    pub fn is_outage(&self) -> bool {
        self.indicator.is_outage() || self.incidents.iter().any(|i| i.impact.is_outage())
    }

    /// Parses a `summary.json` body. Members may be missing; what is there must have its type.
    pub fn parse(body: &[u8]) -> Result<Summary, String> {
        let raw: wire::Summary =
            serde_json::from_slice(body).map_err(|e| format!("not a Statuspage summary.json: {e}"))?;
        Ok(Summary {
            indicator: raw.status.indicator,
            description: raw.status.description.unwrap_or_default(),
            incidents: raw
                .incidents
                .unwrap_or_default()
                .into_iter()
                .map(|i| Incident {
                    name: i.name.unwrap_or_default(),
                    impact: i.impact.unwrap_or(Severity::Unknown),
                    status: i.status.unwrap_or_default(),
                    started_at: i.started_at.or(i.created_at),
                    shortlink: i.shortlink,
                })
                .collect(),
            degraded_components: raw
                .components
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.status.as_deref().is_some_and(|s| s != "operational") && c.group != Some(true))
                .map(|c| Component { name: c.name.unwrap_or_default(), status: c.status.unwrap_or_default() })
                .collect(),
        })
    }
}

/// The summary's JSON as Statuspage writes it (only what is read).
mod wire {
    use serde::Deserialize;

    use super::Severity;

    // every member but the indicator may be missing or null
    #[derive(Deserialize)]
    pub(super) struct Summary {
        /// Required: without it, the body is not a summary.
        pub(super) status: Status,
        #[serde(default)]
        pub(super) components: Option<Vec<Component>>,
        #[serde(default)]
        pub(super) incidents: Option<Vec<Incident>>,
    }

    #[derive(Deserialize)]
    pub(super) struct Status {
        pub(super) indicator: Severity,
        #[serde(default)]
        pub(super) description: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Component {
        #[serde(default)]
        pub(super) name: Option<String>,
        #[serde(default)]
        pub(super) status: Option<String>,
        /// A group of components: its members are listed too.
        #[serde(default)]
        pub(super) group: Option<bool>,
    }

    #[derive(Deserialize)]
    pub(super) struct Incident {
        #[serde(default)]
        pub(super) name: Option<String>,
        #[serde(default)]
        pub(super) status: Option<String>,
        #[serde(default)]
        pub(super) impact: Option<Severity>,
        #[serde(default)]
        pub(super) started_at: Option<String>,
        #[serde(default)]
        pub(super) created_at: Option<String>,
        #[serde(default)]
        pub(super) shortlink: Option<String>,
    }
}

/// The address of a page's summary: `url` itself when it names a `.json` file, else `url` with
/// [`SUMMARY_PATH`] appended.
pub fn summary_url(url: &str) -> String {
    if url.ends_with(".json") { url.to_owned() } else { format!("{}{SUMMARY_PATH}", url.trim_end_matches('/')) }
}

/// Reads the summary at `url` within `timeout` (connecting, waiting and reading, all told) and
/// [`MAX_SUMMARY_BYTES`].
pub async fn fetch(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<Summary, String> {
    let read = async {
        let response = client.get(url).send().await.map_err(|e| format!("cannot reach {url}: {}", plain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {}", status.as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_SUMMARY_BYTES as u64) {
            return Err(format!("{url} is larger than {MAX_SUMMARY_BYTES} bytes"));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| format!("reading {url}: {}", plain(&e)))?;
            if body.len() + chunk.len() > MAX_SUMMARY_BYTES {
                return Err(format!("{url} is larger than {MAX_SUMMARY_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Summary::parse(&body)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(format!("{url} did not answer within {}", crate::duration::format_duration(timeout))),
    }
}

/// A transport error without its chain of sources' noise.
fn plain(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// An open incident of a provider that failed a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderIncident {
    /// The provider whose page lists it.
    pub provider: String,
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
}

/// A provider's status page as the router last read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusPage {
    /// The provider.
    pub provider: String,
    /// The summary's address.
    pub url: String,
    /// What it said at the last good read; `None` before one, or once it is older than three
    /// polls (an unreachable page says nothing about now).
    pub summary: Option<Summary>,
    /// When it was last read successfully (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Why the last read failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusPage {
    /// "openai reports an incident: Elevated error rates (major outage since 12:03 UTC)", when
    /// the page lists unresolved incidents.
    pub fn incident_note(&self) -> Option<String> {
        let incidents = &self.summary.as_ref()?.incidents;
        if incidents.is_empty() {
            return None;
        }
        let list: Vec<String> = incidents.iter().map(Incident::describe).collect();
        let noun = if incidents.len() == 1 { "an incident" } else { "incidents" };
        Some(format!("{} reports {noun}: {}", self.provider, list.join("; ")))
    }
}

/// The time as RFC 3339, to the second.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MAJOR: &str = r#"{
      "page": {"id": "x", "name": "OpenAI", "url": "https://status.openai.com", "updated_at": "2026-12-04T12:10:00Z"},
      "components": [
        {"id": "a", "name": "API", "status": "major_outage", "group": false},
        {"id": "b", "name": "ChatGPT", "status": "operational"},
        {"id": "g", "name": "Everything", "status": "major_outage", "group": true}
      ],
      "incidents": [{"id": "i", "name": "Elevated error rates", "status": "investigating", "impact": "major",
                     "created_at": "2026-12-04T12:03:41.123Z", "started_at": "2026-12-04T12:03:00Z",
                     "shortlink": "https://stspg.io/x", "incident_updates": []}],
      "scheduled_maintenances": [],
      "status": {"indicator": "major", "description": "Partial System Outage"}
    }"#;

    #[test]
    fn reads_the_indicator_incidents_and_what_is_not_operational() {
        let s = Summary::parse(MAJOR.as_bytes()).unwrap();
        assert_eq!(s.indicator, Severity::Major);
        assert!(s.is_outage());
        assert_eq!(s.incidents.len(), 1);
        assert_eq!(s.incidents[0].describe(), "Elevated error rates (major outage since 12:03 UTC)");
        assert_eq!(s.degraded_components, [Component { name: "API".into(), status: "major_outage".into() }]);
        let page =
            StatusPage { provider: "openai".into(), url: "u".into(), summary: Some(s), updated_at: None, error: None };
        assert_eq!(
            page.incident_note().unwrap(),
            "openai reports an incident: Elevated error rates (major outage since 12:03 UTC)"
        );
    }

    #[test]
    fn a_minor_incident_is_no_outage_and_unknown_values_are_kept_apart() {
        let s = Summary::parse(
            br#"{"status": {"indicator": "minor"}, "incidents": [{"name": "Slow", "impact": "minor"}, {"name": "Odd", "impact": "cosmic"}]}"#,
        )
        .unwrap();
        assert!(!s.is_outage());
        assert_eq!(s.incidents[1].impact, Severity::Unknown);
        assert_eq!(s.incidents[0].describe(), "Slow (minor impact)");
        let s =
            Summary::parse(br#"{"status": {"indicator": "critical", "description": "Major System Outage"}}"#).unwrap();
        assert!(s.is_outage() && s.incidents.is_empty());
        // nulls where strings and lists go
        let s = Summary::parse(
            br#"{"status": {"indicator": "none", "description": null}, "components": null, "incidents": [{"name": null, "impact": null, "started_at": null}]}"#,
        )
        .unwrap();
        assert_eq!((s.incidents[0].impact, s.description.as_str()), (Severity::Unknown, ""));
    }

    #[test]
    fn anything_else_is_an_error_not_a_panic() {
        for body in [&b""[..], b"<html>502</html>", b"[]", br#"{"status": {"indicator": 3}}"#, b"\xff\xfe"] {
            assert!(Summary::parse(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn the_summary_path_is_appended_to_a_page_address() {
        assert_eq!(summary_url("https://status.anthropic.com"), "https://status.anthropic.com/api/v2/summary.json");
        assert_eq!(summary_url("https://status.anthropic.com/"), "https://status.anthropic.com/api/v2/summary.json");
        assert_eq!(summary_url("http://h/x/summary.json"), "http://h/x/summary.json");
    }
}
