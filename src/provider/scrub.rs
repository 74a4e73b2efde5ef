//! Upstream text made safe to keep in an error: one line, the API key redacted, bounded in length.
//! Both adapters put what a provider (or a proxy in front of it) answered into their errors, and
//! both must neither echo the key nor keep a megabyte of HTML.

use crate::secret::ApiKey;

/// Longest message taken from a body that is not a JSON error (HTML pages, proxies' text), and
/// longest type, code or request id taken from one that is.
pub(crate) const SNIPPET_CHARS: usize = 200;
/// Longest message taken from a JSON error.
pub(crate) const MESSAGE_CHARS: usize = 2000;

/// `text` with whitespace and control characters collapsed to single spaces, the API key redacted,
/// at most `max_chars` characters (the last one an ellipsis when cut).
pub(crate) fn one_line(key: Option<&ApiKey>, text: &str, max_chars: usize) -> String {
    let spaced: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let collapsed = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    // the key holds no whitespace, so collapsing never splits an occurrence of it
    let redacted = match key {
        Some(k) => k.redact(&collapsed),
        None => collapsed,
    };
    if redacted.chars().count() <= max_chars {
        return redacted;
    }
    let mut cut: String = redacted.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_line_truncates_on_char_boundaries() {
        let s = one_line(None, &"é".repeat(300), 200);
        assert_eq!(s.chars().count(), 200);
        assert!(s.ends_with('…'));
        assert_eq!(one_line(None, "  a \n\t b  ", 200), "a b");
    }

    #[test]
    fn the_key_is_redacted_before_the_cut() {
        let key = ApiKey::new("sk-canary-1234567890");
        let text = format!("{}bad key {}\n", "x ".repeat(95), key.expose());
        let s = one_line(Some(&key), &text, 200);
        assert!(!s.contains("sk-canary"), "{s}");
        assert!(!s.contains('\n'));
    }
}
