//! Policy errors and warnings that point at file, line, column and key.

use std::fmt;
use std::ops::Range;

/// Where in a policy file something is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The file (or `<inline>` for a string).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl Location {
    /// The location of byte offset `offset` in `text`.
    pub fn at(file: &str, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(1, |s| s.chars().count() + 1);
        Location { file: file.to_owned(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in a policy: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// Where.
    pub location: Location,
    /// The key path (`routes.chat.targets[1].provider`); empty for syntax errors.
    pub key: String,
    /// What is wrong, and how to fix it where that is known.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.location, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.location, self.key, self.message)
        }
    }
}

/// Every error found in a policy, reported at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("{file}: cannot read policy: {message}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// The policy is invalid; every problem found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The diagnostics (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            PolicyError::Io { .. } => &[],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(|d| format!("error: {d}")).collect();
    lines.join("\n")
}

/// Collects diagnostics while a policy is checked.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// Prepended to every key path (a policy inside a drill file is under `policy.`).
    pub(crate) prefix: String,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Collector { file, text, errors: Vec::new(), warnings: Vec::new(), prefix: String::new() }
    }

    pub(crate) fn diagnostic(
        &self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let key: String = key.into();
        let key = if self.prefix.is_empty() || key.is_empty() { key } else { format!("{}{key}", self.prefix) };
        Diagnostic { location: Location::at(self.file, self.text, span.start), key, message: message.into() }
    }

    pub(crate) fn error(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let d = self.diagnostic(span, key, message);
        self.errors.push(d);
    }

    pub(crate) fn warn(&mut self, span: &Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let d = self.diagnostic(span, key, message);
        self.warnings.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbb = 2\n\u{e9}c = 3\n";
        assert_eq!(Location::at("p.toml", text, 0).to_string(), "p.toml:1:1");
        assert_eq!(Location::at("p.toml", text, 6).to_string(), "p.toml:2:1");
        assert_eq!(Location::at("p.toml", text, 11).to_string(), "p.toml:2:6");
        // column counts characters, not bytes
        assert_eq!(Location::at("p.toml", text, 15).to_string(), "p.toml:3:2");
        assert_eq!(Location::at("p.toml", text, 999).line, 4);
    }
}
