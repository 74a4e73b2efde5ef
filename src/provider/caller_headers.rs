//! The provider headers a gateway caller sends (`anthropic-beta`, `anthropic-version`,
//! `openai-beta`): which of them reach a provider of the caller's wire, and which beta features a
//! provider is known not to take (a cloud that hosts Claude refuses a beta it does not know).

use serde::Serialize;

pub use crate::wire::CALLER_HEADERS;

/// What one provider is sent of its callers' headers: the policy's `forward_headers` and
/// `drop_betas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CallerHeaders {
    /// The caller headers sent on (all of [`CALLER_HEADERS`] unless the policy says otherwise).
    pub forward: Vec<String>,
    /// Beta features never sent, each dropped and reported: a name, or a prefix ending in `*`.
    pub drop_betas: Vec<String>,
}

impl Default for CallerHeaders {
    fn default() -> Self {
        CallerHeaders { forward: CALLER_HEADERS.iter().map(|h| (*h).to_owned()).collect(), drop_betas: Vec::new() }
    }
}

impl CallerHeaders {
    /// Rules forwarding `forward` and dropping `drop_betas`.
    pub fn new(forward: Vec<String>, drop_betas: Vec<String>) -> Self {
        CallerHeaders { forward, drop_betas }
    }

    /// Whether the caller's header `name` is sent on.
    pub fn forwards(&self, name: &str) -> bool {
        self.forward.iter().any(|f| f.eq_ignore_ascii_case(name))
    }

    /// Whether the beta feature `beta` is never sent.
    pub fn drops_beta(&self, beta: &str) -> bool {
        self.drop_betas.iter().any(|d| match d.strip_suffix('*') {
            Some(prefix) => beta.starts_with(prefix),
            None => d == beta,
        })
    }

    /// The caller's beta features of `request` this provider is not sent.
    pub fn dropped_betas<'r>(&self, request: &'r crate::chat::ChatRequest) -> impl Iterator<Item = &'r str> {
        let forward = self.forwards("anthropic-beta");
        request.betas.iter().map(String::as_str).filter(move |b| !forward || self.drops_beta(b))
    }

    /// Takes out of a body's `headers` what this provider must not be sent: the caller headers it
    /// does not forward, and every beta it drops (the caller's, or one a body feature needs).
    pub(crate) fn apply(&self, request: &crate::chat::ChatRequest, headers: &mut crate::wire::Headers) {
        headers.retain(|(name, value)| match *name {
            "anthropic-beta" => {
                !self.drops_beta(value) && (self.forwards(name) || !request.betas.iter().any(|b| b == value))
            }
            n if CALLER_HEADERS.contains(&n) => self.forwards(n),
            _ => true,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn betas_are_dropped_by_name_or_prefix_and_headers_by_the_forward_list() {
        let rules = CallerHeaders::new(
            vec!["anthropic-version".into()],
            vec!["context-management-*".into(), "effort-2025-11-24".into()],
        );
        let request =
            crate::chat::ChatRequest::user("hi").beta("claude-code-20250219").beta("context-management-2025-06-27");
        let mut headers: crate::wire::Headers = vec![
            ("anthropic-beta", "claude-code-20250219".into()),
            ("anthropic-beta", "context-management-2025-06-27".into()),
            ("anthropic-beta", "structured-outputs-2025-11-13".into()),
            ("anthropic-beta", "effort-2025-11-24".into()),
            ("anthropic-version", "2023-06-01".into()),
            ("openai-beta", "responses=v9".into()),
        ];
        rules.apply(&request, &mut headers);
        // a caller's beta is not forwarded (anthropic-beta is not in the list); the body's own
        // structured-outputs beta is kept; the dropped ones go whoever asked for them
        assert_eq!(
            headers,
            vec![
                ("anthropic-beta", "structured-outputs-2025-11-13".to_owned()),
                ("anthropic-version", "2023-06-01".into())
            ]
        );
        assert_eq!(
            rules.dropped_betas(&request).collect::<Vec<_>>(),
            ["claude-code-20250219", "context-management-2025-06-27"]
        );
        let default = CallerHeaders::default();
        assert!(CALLER_HEADERS.iter().all(|h| default.forwards(h)));
        assert_eq!(default.dropped_betas(&request).count(), 0);
    }
}
