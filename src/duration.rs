//! Durations written as strings in TOML: `"250ms"`, `"30s"`, `"5m"`, `"1h"`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that (de)serializes as a human string like `"250ms"` or `"30s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationStr(Duration);

impl DurationStr {
    /// `d`, written as a human string when serialized.
    pub const fn new(d: Duration) -> Self {
        DurationStr(d)
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for DurationStr {
    fn from(d: Duration) -> Self {
        DurationStr(d)
    }
}

impl From<DurationStr> for Duration {
    fn from(d: DurationStr) -> Self {
        d.0
    }
}

/// Parses `"250ms"`, `"1.5s"`, `"30s"`, `"5m"`, `"1h"`, and combinations like `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration (write e.g. \"250ms\", \"30s\", \"5m\")".into());
    }
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(d);
    }
    // humantime does not take fractions ("1.5s"); accept a single fractional number + unit
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("invalid duration `{t}` (write e.g. \"250ms\", \"30s\", \"5m\")")),
    };
    match num.parse::<f64>().ok().and_then(|n| Duration::try_from_secs_f64(n * scale).ok()) {
        Some(d) => Ok(d),
        None => Err(format!("invalid duration `{t}` (write e.g. \"250ms\", \"30s\", \"5m\")")),
    }
}

/// Formats a duration the way policies write it (`"250ms"`, `"30s"`, `"1m30s"`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

impl fmt::Display for DurationStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        parse_duration(&s).map(DurationStr).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DurationStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_policies_use() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        // too large for a duration: an error, not a panic
        assert!(parse_duration("100000000000000000000s").is_err());
        assert!(parse_duration("1e400s").is_err());
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}

/// `#[serde(serialize_with = ...)]` helpers, one place for every report and snapshot.
pub(crate) mod ser {
    use std::time::Duration;

    use serde::Serializer;

    /// As policies write it: `"250ms"`, `"30s"`.
    pub(crate) fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// As policies write it, or `null`.
    pub(crate) fn opt_human<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => human(d, s),
            None => s.serialize_none(),
        }
    }

    /// Whole milliseconds (for `*_ms` fields).
    pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Whole milliseconds, or `null`.
    pub(crate) fn opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => millis(d, s),
            None => s.serialize_none(),
        }
    }
}

/// `#[serde(deserialize_with = ...)]` helpers, the other way of [`ser`].
pub(crate) mod de {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Whole milliseconds, or `null`.
    pub(crate) fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
