//! Same-wire passthrough: the caller's body as it arrived, sent on to a target of the same wire
//! with only the members the router must set edited in place. Nothing the router does not touch
//! is decoded and encoded again, so a member keeps its exact bytes (number formatting, `null`s,
//! member order, fields that do not exist yet) and the hop costs a copy instead of a translation.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::protocol::Protocol;

/// A caller's request body as received, kept beside its decoded form by [`crate::wire::decode`].
///
/// Given to the router with the request decoded from it ([`crate::Router::chat_decoded`]), it is
/// what a target of the same wire receives: these bytes, with `model` (and `stream`, and what the
/// router needs of the answer) set, instead of an encoding of the decoded request. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct Original {
    protocol: Protocol,
    body: Bytes,
}

impl Original {
    /// `body`, a JSON object in `protocol`'s wire.
    pub fn new(protocol: Protocol, body: Bytes) -> Self {
        Original { protocol, body }
    }

    /// The wire the body is written in.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The body as received.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

impl fmt::Debug for Original {
    // a prompt can be megabytes of base64: the length says enough
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Original").field("protocol", &self.protocol).field("bytes", &self.body.len()).finish()
    }
}

/// One member the router sets.
#[derive(Debug)]
pub(crate) struct Edit<'a> {
    pub(crate) key: &'a str,
    /// `None` removes the member.
    pub(crate) value: Option<Value>,
    /// Whether to add the member when the body does not have it.
    pub(crate) add: bool,
    /// Whether a member the body has keeps its value (the edit only supplies a default).
    pub(crate) keep: bool,
}

impl<'a> Edit<'a> {
    /// Sets `key` to `value`, where it is or at the end.
    pub(crate) fn set(key: &'a str, value: Value) -> Self {
        Edit { key, value: Some(value), add: true, keep: false }
    }

    /// Adds `key` with `value` unless the body has it.
    pub(crate) fn default_to(key: &'a str, value: Value) -> Self {
        Edit { key, value: Some(value), add: true, keep: true }
    }

    /// Replaces `key`'s value if the body has it.
    pub(crate) fn replace(key: &'a str, value: Value) -> Self {
        Edit { key, value: Some(value), add: false, keep: false }
    }

    /// Removes `key`.
    pub(crate) fn remove(key: &'a str) -> Self {
        Edit { key, value: None, add: false, keep: false }
    }
}

/// The top-level members of a JSON object, in order, each value as its raw text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A member name, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((k, v));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// `body` with `edits` applied: each edited member replaced in place (or removed), the members to
/// add appended, every other member copied byte for byte.
pub(crate) fn splice(body: &[u8], edits: &[Edit<'_>]) -> Result<Vec<u8>, String> {
    let Members(members) =
        serde_json::from_slice(body).map_err(|e| format!("the request body is not a JSON object: {e}"))?;
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut done = vec![false; edits.len()];
    out.push(b'{');
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, key: &str, value: &[u8]| -> Result<(), String> {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key).map_err(|e| e.to_string())?;
        out.push(b':');
        out.extend_from_slice(value);
        Ok(())
    };
    for (key, raw) in &members {
        match edits.iter().position(|e| e.key == key.as_ref()) {
            None => member(&mut out, key, raw.get().as_bytes())?,
            Some(i) if edits[i].keep => {
                done[i] = true;
                member(&mut out, key, raw.get().as_bytes())?;
            }
            Some(i) => {
                done[i] = true;
                if let Some(v) = &edits[i].value {
                    member(&mut out, key, &serde_json::to_vec(v).map_err(|e| e.to_string())?)?;
                }
            }
        }
    }
    for (edit, done) in edits.iter().zip(done) {
        if let (false, true, Some(v)) = (done, edit.add, &edit.value) {
            member(&mut out, edit.key, &serde_json::to_vec(v).map_err(|e| e.to_string())?)?;
        }
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spliced(body: &str, edits: &[Edit<'_>]) -> String {
        String::from_utf8(splice(body.as_bytes(), edits).unwrap()).unwrap()
    }

    #[test]
    fn untouched_members_keep_their_bytes_and_order() {
        let body = r#"{"z": 1.50, "model" : "route", "big": 12345678901234567890123, "n": null, "s": "\u00e9\n"}"#;
        assert_eq!(
            spliced(body, &[Edit::set("model", json!("gpt-x"))]),
            r#"{"z":1.50,"model":"gpt-x","big":12345678901234567890123,"n":null,"s":"\u00e9\n"}"#
        );
    }

    #[test]
    fn edits_replace_in_place_remove_and_add_at_the_end() {
        let body = r#"{"model":"r","stream":false,"stream_options":{"x":1},"messages":[]}"#;
        let edits = [
            Edit::set("model", json!("m")),
            Edit::replace("stream", json!(true)),
            Edit::remove("stream_options"),
            Edit::default_to("max_tokens", json!(4096)),
            Edit::default_to("messages", json!(["not used"])),
            Edit::replace("absent", json!(1)),
        ];
        assert_eq!(spliced(body, &edits), r#"{"model":"m","stream":true,"messages":[],"max_tokens":4096}"#);
    }

    #[test]
    fn escaped_member_names_are_matched_and_rewritten_faithfully() {
        let body = r#"{"mod\u0065l":"r","a\"b":2}"#;
        assert_eq!(spliced(body, &[Edit::set("model", json!("m"))]), r#"{"model":"m","a\"b":2}"#);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_an_error_not_a_panic() {
        for body in ["[1]", "{", "", "{\"a\":}", "null"] {
            assert!(splice(body.as_bytes(), &[]).is_err(), "{body}");
        }
    }
}
