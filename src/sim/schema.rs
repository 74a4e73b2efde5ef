//! Values for a JSON Schema: what the simulated model answers when a request asks for structured
//! output (a `json_schema` response format) or forces a tool whose arguments have a schema.
//!
//! The value is a pure function of the schema and a seed text (the prompt's words, which strings
//! repeat, so a test can see what the model was asked). It follows what clients' schemas use:
//! objects (required properties, and the optional ones near the top), `enum` and `const`, arrays
//! (`minItems`, `maxItems`, tuples), strings (`format`, `minLength`, `maxLength`), integers and
//! numbers within their bounds and `multipleOf`, booleans, null, `anyOf` / `oneOf` (the first
//! alternative that is not null), `allOf` (merged), `$ref` within the document and `type` lists.
//! `pattern` and `not` are not followed.
//!
//! A schema comes from a request, so nothing in it may make the simulator work hard: depth, `$ref`
//! expansions along one path, items, string lengths, properties and the size of the whole value
//! are capped. Past a cap the value is the smallest of its type, which a hostile schema's own
//! demands (a million items) may then not meet.

use serde_json::{Map, Number, Value, json};

use crate::stable_hash::StableHash;

/// Nesting (objects, arrays, references) below which values are still built in full.
const MAX_DEPTH: usize = 16;
/// `$ref` expansions along one path: enough for models that refer to models, and the end of a
/// schema that refers to itself.
const MAX_REFS: usize = 6;
/// Depth up to which optional properties are filled in and arrays get an item when they need
/// none: below it only what the schema requires, so a recursive schema ends.
const OPTIONAL_DEPTH: usize = 4;
/// Items of one array, whatever `minItems` asks.
const MAX_ITEMS: usize = 16;
/// Characters of one string, whatever `minLength` asks.
const MAX_STRING: usize = 256;
/// Optional (and `minProperties` filler) properties of one object.
const MAX_OPTIONAL: usize = 32;
/// About how many bytes the whole value may take as JSON.
const MAX_BYTES: usize = 64 * 1024;
/// The string when the prompt has no words.
const DEFAULT_TEXT: &str = "sim";

/// A value valid for `schema` (within the caps), its strings made of `seed`.
pub(crate) fn generate(schema: &Value, seed: &str) -> Value {
    let seed = seed.trim();
    let seed = if seed.is_empty() { DEFAULT_TEXT } else { seed };
    let seed: String = seed.chars().take(MAX_STRING).collect();
    Generator { root: schema, seed, budget: MAX_BYTES }.value(schema, At::default())
}

/// Whether `schema` asks nothing of an object's members (`{"type": "object"}`, no schema at all):
/// any object is valid for it.
pub(crate) fn is_open_object(schema: &Value) -> bool {
    let Some(o) = schema.as_object() else { return schema.is_null() || schema == &Value::Bool(true) };
    o.iter().all(|(key, v)| match key.as_str() {
        "type" => v == "object",
        "properties" => v.as_object().is_some_and(Map::is_empty),
        "additionalProperties" => v == &Value::Bool(true) || v.as_object().is_some_and(Map::is_empty),
        "description" | "title" | "$schema" => true,
        _ => false,
    })
}

/// Where a value is built.
#[derive(Debug, Clone, Copy, Default)]
struct At {
    /// Nesting.
    depth: usize,
    /// `$ref`s expanded on the way here.
    refs: usize,
    /// Which item of an array this is: items differ (`uniqueItems` holds for most schemas).
    variant: usize,
}

impl At {
    fn inside(self) -> At {
        At { depth: self.depth + 1, refs: self.refs, variant: 0 }
    }

    fn item(self, variant: usize) -> At {
        At { variant, ..self.inside() }
    }

    fn through_ref(self) -> At {
        At { refs: self.refs + 1, depth: self.depth + 1, variant: self.variant }
    }

    /// Whether this is deep enough that only what the schema requires is built.
    fn only_required(self) -> bool {
        self.depth >= OPTIONAL_DEPTH || self.refs >= MAX_REFS / 2
    }
}

struct Generator<'a> {
    root: &'a Value,
    seed: String,
    /// Bytes the value may still take.
    budget: usize,
}

impl<'a> Generator<'a> {
    fn value(&mut self, schema: &Value, at: At) -> Value {
        if at.depth > MAX_DEPTH || self.budget == 0 {
            return self.minimal(schema);
        }
        let o = match schema {
            Value::Object(o) => o,
            // `true` (anything) and a schema that is not one: a string will do
            Value::Bool(true) => return self.string(&Map::new(), at),
            // `false` admits nothing; null is as good a wrong answer as any
            _ => return Value::Null,
        };
        if let Some(reference) = o.get("$ref").and_then(Value::as_str) {
            return match self.resolve(reference) {
                Some(_) if at.refs >= MAX_REFS => self.minimal(schema),
                Some(target) => self.value(target, at.through_ref()),
                // a reference out of the document: nothing to follow
                None => self.string(&Map::new(), at),
            };
        }
        if let Some(value) = o.get("const") {
            return self.copied(value);
        }
        if let Some(values) = o.get("enum").and_then(Value::as_array).filter(|v| !v.is_empty()) {
            let picked = &values[at.variant % values.len()];
            return if self.cost(picked) <= self.budget { self.copied(picked) } else { self.smallest(values) };
        }
        if let Some(parts) = o.get("allOf").and_then(Value::as_array) {
            let merged = self.merged(o, parts);
            return self.value(&merged, at.inside());
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alternatives) = o.get(key).and_then(Value::as_array).filter(|a| !a.is_empty()) {
                let chosen = self.alternative(alternatives, at);
                return self.value(chosen, at.inside());
            }
        }
        match type_of(o) {
            "object" => self.object(o, at),
            "array" => self.array(o, at),
            "integer" => self.spent(integer(o, at.variant), 8),
            "number" => self.spent(number(o, at.variant), 8),
            "boolean" => self.spent(Value::Bool(at.variant.is_multiple_of(2)), 5),
            "null" => self.spent(Value::Null, 4),
            _ => self.string(o, at),
        }
    }

    fn object(&mut self, o: &Map<String, Value>, at: At) -> Value {
        let empty = Map::new();
        let properties = o.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let required: Vec<&str> = o
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        let mut optional = 0;
        for (name, schema) in properties {
            let needed = required.contains(&name.as_str());
            if !needed && (at.only_required() || optional >= MAX_OPTIONAL) {
                continue;
            }
            optional += usize::from(!needed);
            let value = self.value(schema, at.inside());
            self.budget = self.budget.saturating_sub(name.len() + 4);
            out.insert(name.clone(), value);
        }
        // required members the properties do not describe: anything goes
        let undescribed = match o.get("additionalProperties") {
            Some(schema @ Value::Object(_)) => schema,
            _ => &Value::Bool(true),
        };
        for name in required {
            if out.contains_key(name) {
                continue;
            }
            let value = self.value(undescribed, at.inside());
            self.budget = self.budget.saturating_sub(name.len() + 4);
            out.insert(name.to_owned(), value);
        }
        let at_least = o.get("minProperties").and_then(Value::as_u64).map_or(0, saturating_usize).min(MAX_OPTIONAL);
        let extra = match o.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(schema @ Value::Object(_)) => Some(schema),
            _ => Some(&Value::Bool(true)),
        };
        if let Some(schema) = extra {
            let mut n = 0;
            while out.len() < at_least {
                n += 1;
                let name = format!("property_{n}");
                if !out.contains_key(&name) {
                    let value = self.value(schema, at.inside());
                    out.insert(name, value);
                }
            }
        }
        self.spent(Value::Object(out), 2)
    }

    fn array(&mut self, o: &Map<String, Value>, at: At) -> Value {
        let min = o.get("minItems").and_then(Value::as_u64).map_or(0, saturating_usize);
        let max = o.get("maxItems").and_then(Value::as_u64).map_or(usize::MAX, saturating_usize);
        // a tuple: `prefixItems` (2020-12), or `items` as a list (drafts 4 to 7)
        let prefix: &[Value] = match (o.get("prefixItems"), o.get("items")) {
            (Some(Value::Array(p)), _) | (None, Some(Value::Array(p))) => p,
            _ => &[],
        };
        let rest = match (o.get("prefixItems"), o.get("items"), o.get("additionalItems")) {
            (Some(_), Some(items), _) if !items.is_array() => items,
            (None, Some(items), _) if !items.is_array() => items,
            (_, _, Some(additional)) => additional,
            _ => &Value::Bool(true),
        };
        // `items: false`: nothing past the tuple
        let max = if rest == &Value::Bool(false) { max.min(prefix.len()) } else { max };
        let wanted = if at.only_required() { min } else { min.max(1).max(prefix.len()) };
        let n = wanted.min(max).min(MAX_ITEMS);
        let items = (0..n)
            .map(|i| {
                let schema = prefix.get(i).unwrap_or(rest);
                if self.budget == 0 { self.minimal(schema) } else { self.value(schema, at.item(i)) }
            })
            .collect();
        self.spent(Value::Array(items), 2)
    }

    fn string(&mut self, o: &Map<String, Value>, at: At) -> Value {
        let n = at.variant;
        let formatted = match o.get("format").and_then(Value::as_str) {
            Some("date") => Some(format!("2024-01-{:02}", 15 + n % 14)),
            Some("date-time") => Some(format!("2024-01-{:02}T12:00:00Z", 15 + n % 14)),
            Some("time") => Some(format!("12:{:02}:00Z", n % 60)),
            Some("duration") => Some(format!("P{}D", n + 1)),
            Some("email" | "idn-email") => {
                Some(if n == 0 { "sim@example.com".into() } else { format!("sim{n}@example.com") })
            }
            Some("hostname" | "idn-hostname") => {
                Some(if n == 0 { "sim.example.com".into() } else { format!("sim{n}.example.com") })
            }
            Some("uri" | "url" | "iri" | "uri-reference" | "iri-reference") => {
                Some(format!("https://example.com/sim/{n}"))
            }
            Some("ipv4") => Some(format!("192.0.2.{}", 1 + n % 254)),
            Some("ipv6") => Some(format!("2001:db8::{:x}", n + 1)),
            Some("uuid") => Some(uuid(&self.seed, n)),
            Some("regex") => Some(".*".into()),
            _ => None,
        };
        let mut text =
            formatted.unwrap_or_else(|| if n == 0 { self.seed.clone() } else { format!("{} {}", self.seed, n + 1) });
        let min = o.get("minLength").and_then(Value::as_u64).map_or(0, saturating_usize).min(MAX_STRING);
        let max = o.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, saturating_usize);
        let mut filler = " ".chars().chain(self.seed.chars()).cycle();
        let mut len = text.chars().count();
        while len < min {
            text.extend(filler.next());
            len += 1;
        }
        if len > max {
            text = text.chars().take(max).collect();
        }
        let cost = text.len() + 2;
        self.spent(Value::String(text), cost)
    }

    /// `allOf`'s parts merged into the schema: properties and required members together, any
    /// other keyword from the first that has it. A part that is a reference is followed once.
    fn merged(&self, o: &Map<String, Value>, parts: &[Value]) -> Value {
        let mut merged: Map<String, Value> =
            o.iter().filter(|(k, _)| *k != "allOf").map(|(k, v)| (k.clone(), v.clone())).collect();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => self.resolve(reference).unwrap_or(&Value::Null),
                None => part,
            };
            let Some(part) = part.as_object() else { continue };
            for (key, value) in part {
                match (key.as_str(), merged.get_mut(key), value) {
                    ("properties", Some(Value::Object(mine)), Value::Object(theirs)) => {
                        for (name, schema) in theirs {
                            mine.entry(name.clone()).or_insert_with(|| schema.clone());
                        }
                    }
                    ("required", Some(Value::Array(mine)), Value::Array(theirs)) => {
                        mine.extend(theirs.iter().filter(|n| !mine.contains(n)).cloned().collect::<Vec<_>>());
                    }
                    (_, None, _) => {
                        merged.insert(key.clone(), value.clone());
                    }
                    _ => {}
                }
            }
        }
        Value::Object(merged)
    }

    /// The alternative of `anyOf` / `oneOf` to follow: the first that is not null (an optional
    /// field's value is more use than its absence); deep down, the first that ends the recursion.
    fn alternative<'s>(&self, alternatives: &'s [Value], at: At) -> &'s Value {
        let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
        let ends = |s: &Value| s.get("$ref").is_none() && s.get("anyOf").is_none() && s.get("oneOf").is_none();
        let preferred = if at.only_required() { alternatives.iter().find(|s| ends(s)) } else { None };
        preferred.or_else(|| alternatives.iter().find(|s| !is_null(s))).unwrap_or(&alternatives[0])
    }

    /// A reference within the document: `#`, `#/$defs/Name`, `#/definitions/Name`, any pointer.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() { Some(self.root) } else { self.root.pointer(pointer) }
    }

    /// The smallest value of the schema's type, built without following anything further than a
    /// few references: what a value past a cap is.
    fn minimal(&mut self, schema: &Value) -> Value {
        let mut schema = schema;
        for _ in 0..MAX_REFS {
            let Some(o) = schema.as_object() else { break };
            if let Some(target) = o.get("$ref").and_then(Value::as_str).and_then(|r| self.resolve(r)) {
                schema = target;
                continue;
            }
            if let Some(value) = o.get("const") {
                return self.copied(value);
            }
            if let Some(values) = o.get("enum").and_then(Value::as_array).filter(|v| !v.is_empty()) {
                return self.smallest(values);
            }
            let alternatives = o.get("anyOf").or_else(|| o.get("oneOf")).and_then(Value::as_array);
            if let Some(alternatives) = alternatives.filter(|a| !a.is_empty()) {
                let is_null = |s: &&Value| s.get("type").and_then(Value::as_str) == Some("null");
                schema = alternatives.iter().find(is_null).unwrap_or(&alternatives[0]);
                continue;
            }
            return match type_of(o) {
                "object" => json!({}),
                "array" => json!([]),
                "integer" => integer(o, 0),
                "number" => number(o, 0),
                "boolean" => Value::Bool(false),
                "null" => Value::Null,
                _ => Value::String(String::new()),
            };
        }
        Value::Null
    }

    /// The enum value that costs least, or null when even it does not fit.
    fn smallest(&mut self, values: &[Value]) -> Value {
        let cheapest = values.iter().min_by_key(|v| self.cost(v));
        match cheapest {
            Some(v) if self.cost(v) <= self.budget => self.copied(v),
            _ => Value::Null,
        }
    }

    /// A value of the schema (`const`, `enum`) copied, or null when it does not fit the budget.
    fn copied(&mut self, value: &Value) -> Value {
        let cost = self.cost(value);
        if cost > self.budget {
            return Value::Null;
        }
        self.spent(value.clone(), cost)
    }

    /// Bytes `value` would take, counted no further than one past the budget.
    fn cost(&self, value: &Value) -> usize {
        let limit = self.budget.saturating_add(1);
        let mut total = 0usize;
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            total += match v {
                Value::String(s) => s.len() + 2,
                Value::Object(o) => {
                    stack.extend(o.values());
                    o.keys().map(|k| k.len() + 4).sum::<usize>() + 2
                }
                Value::Array(a) => {
                    stack.extend(a);
                    a.len() + 2
                }
                _ => 8,
            };
            if total >= limit {
                break;
            }
        }
        total
    }

    fn spent(&mut self, value: Value, cost: usize) -> Value {
        self.budget = self.budget.saturating_sub(cost);
        value
    }
}

/// The type a value of the schema takes: the first of `type` that is not null (null when it is
/// the only one), else the one its keywords imply; a schema that says nothing gets a string.
fn type_of(o: &Map<String, Value>) -> &str {
    match o.get("type") {
        Some(Value::String(t)) => return t,
        Some(Value::Array(types)) => {
            let mut names = types.iter().filter_map(Value::as_str);
            if let Some(t) = names.clone().find(|t| *t != "null").or_else(|| names.next()) {
                return t;
            }
        }
        _ => {}
    }
    let has = |keys: &[&str]| keys.iter().any(|k| o.contains_key(*k));
    if has(&["properties", "required", "additionalProperties", "minProperties", "maxProperties"]) {
        "object"
    } else if has(&["items", "prefixItems", "minItems", "maxItems", "uniqueItems"]) {
        "array"
    } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) {
        "number"
    } else {
        "string"
    }
}

/// The bounds of a numeric schema, as `(value, exclusive)`: draft 6 and later write
/// `exclusiveMinimum: 5`, draft 4 `minimum: 5, exclusiveMinimum: true`.
fn bounds(o: &Map<String, Value>) -> (Option<Bound>, Option<Bound>) {
    let bound = |inclusive: &str, exclusive: &str| {
        let flag = o.get(exclusive).and_then(Value::as_bool) == Some(true);
        match (o.get(exclusive).and_then(Value::as_f64), o.get(inclusive).and_then(Value::as_f64)) {
            (Some(e), Some(i)) => Some(if e >= i { (e, true) } else { (i, false) }),
            (Some(e), None) => Some((e, true)),
            (None, Some(i)) => Some((i, flag)),
            (None, None) => None,
        }
    };
    (bound("minimum", "exclusiveMinimum"), bound("maximum", "exclusiveMaximum"))
}

/// A numeric bound and whether it is exclusive.
type Bound = (f64, bool);

/// An integer within the bounds, a multiple of `multipleOf`: `1 + variant` when that fits.
fn integer(o: &Map<String, Value>, variant: usize) -> Value {
    let (low, high) = bounds(o);
    // `as` saturates: a bound beyond i64 is i64's end
    let lo = low.map(|(v, excl)| if excl && v.fract() == 0.0 { (v as i64).saturating_add(1) } else { v.ceil() as i64 });
    let hi =
        high.map(|(v, excl)| if excl && v.fract() == 0.0 { (v as i64).saturating_sub(1) } else { v.floor() as i64 });
    let mut n = 1i64.saturating_add(i64::try_from(variant).unwrap_or(i64::MAX));
    if let Some(hi) = hi {
        n = n.min(hi);
    }
    if let Some(lo) = lo {
        n = n.max(lo);
    }
    if let Some(m) = o.get("multipleOf").and_then(Value::as_f64).filter(|m| *m >= 1.0 && m.fract() == 0.0) {
        let m = m as i64;
        let up = n.div_euclid(m).saturating_add(i64::from(n.rem_euclid(m) != 0)).saturating_mul(m);
        n = if hi.is_some_and(|hi| up > hi) { n.div_euclid(m).saturating_mul(m) } else { up };
    }
    Value::Number(n.into())
}

/// A number within the bounds, a multiple of `multipleOf`: `1.5 + variant` when that fits.
fn number(o: &Map<String, Value>, variant: usize) -> Value {
    let (low, high) = bounds(o);
    let below = |x: f64, (v, excl): (f64, bool)| x < v || (excl && x <= v);
    let above = |x: f64, (v, excl): (f64, bool)| x > v || (excl && x >= v);
    let mut x = 1.5 + variant as f64;
    if let Some(lo) = low
        && below(x, lo)
    {
        x = match high {
            Some(hi) => lo.0 / 2.0 + hi.0 / 2.0,
            None if lo.1 => lo.0 + 1.0,
            None => lo.0,
        };
    }
    if let Some(hi) = high
        && above(x, hi)
    {
        x = match low {
            Some(lo) => lo.0 / 2.0 + hi.0 / 2.0,
            None if hi.1 => hi.0 - 1.0,
            None => hi.0,
        };
    }
    if let Some(m) = o.get("multipleOf").and_then(Value::as_f64).filter(|m| *m > 0.0 && m.is_finite()) {
        let up = (x / m).ceil() * m;
        x = if high.is_some_and(|hi| above(up, hi)) { (x / m).floor() * m } else { up };
    }
    Number::from_f64(x).map_or(Value::Number(0.into()), Value::Number)
}

/// A version 4 UUID made of the seed and the item.
fn uuid(seed: &str, variant: usize) -> String {
    let a = StableHash::default().field(seed.as_bytes()).u64(variant as u64).finish();
    let b = StableHash::default().u64(a).field(seed.as_bytes()).finish();
    let hex = format!("{a:016x}{b:016x}");
    let variant_digit = ["8", "9", "a", "b"][(b >> 60) as usize % 4];
    format!("{}-{}-4{}-{}{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], variant_digit, &hex[17..20], &hex[20..32])
}

fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn make(schema: Value) -> Value {
        generate(&schema, "Paris today")
    }

    #[test]
    fn an_object_has_its_required_and_optional_properties_in_order() {
        let v = make(json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 3, "maximum": 7},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "exact": {"type": "boolean"},
                "note": {"type": "null"},
            },
            "required": ["city", "unit", "id"],
            "additionalProperties": false,
        }));
        assert_eq!(
            v,
            json!({"city": "Paris today", "days": 3, "unit": "celsius", "exact": true, "note": null, "id": "Paris today"})
        );
        assert_eq!(make(json!({"type": "object"})), json!({}));
        assert_eq!(
            make(json!({"minProperties": 2})),
            json!({"property_1": "Paris today", "property_2": "Paris today"})
        );
    }

    #[test]
    fn strings_follow_format_and_length() {
        let s = |schema: Value| make(schema).as_str().unwrap().to_owned();
        assert_eq!(s(json!({"type": "string", "format": "date"})), "2024-01-15");
        assert_eq!(s(json!({"type": "string", "format": "date-time"})), "2024-01-15T12:00:00Z");
        assert_eq!(s(json!({"type": "string", "format": "email"})), "sim@example.com");
        assert_eq!(s(json!({"type": "string", "format": "uri"})), "https://example.com/sim/0");
        let uuid = s(json!({"type": "string", "format": "uuid"}));
        let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
        assert!(uuid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{uuid}");
        assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
        assert_eq!(uuid, s(json!({"format": "uuid"})), "the same prompt, the same value");
        assert_ne!(uuid, generate(&json!({"format": "uuid"}), "elsewhere").as_str().unwrap());
        assert_eq!(s(json!({"type": "string", "minLength": 20})), "Paris today Paris to");
        assert_eq!(s(json!({"type": "string", "maxLength": 5})), "Paris");
        assert_eq!(generate(&json!({"type": "string"}), "  "), json!("sim"));
        // a word of a million characters, a minLength of a billion: both capped
        assert_eq!(generate(&json!({"type": "string"}), &"x".repeat(1_000_000)).as_str().unwrap().len(), MAX_STRING);
        assert_eq!(s(json!({"minLength": 1_000_000_000u64})).chars().count(), MAX_STRING);
    }

    #[test]
    fn numbers_stay_within_their_bounds() {
        assert_eq!(make(json!({"type": "integer"})), json!(1));
        assert_eq!(make(json!({"type": "integer", "minimum": 10})), json!(10));
        assert_eq!(make(json!({"type": "integer", "exclusiveMinimum": 10})), json!(11));
        assert_eq!(make(json!({"type": "integer", "minimum": 10, "exclusiveMinimum": true})), json!(11), "draft 4");
        assert_eq!(make(json!({"type": "integer", "maximum": -5})), json!(-5));
        assert_eq!(make(json!({"type": "integer", "exclusiveMaximum": 0})), json!(-1));
        assert_eq!(make(json!({"type": "integer", "minimum": 7, "multipleOf": 5})), json!(10));
        assert_eq!(make(json!({"type": "integer", "minimum": 1e300})), json!(i64::MAX));
        assert_eq!(make(json!({"type": "number"})), json!(1.5));
        assert_eq!(make(json!({"type": "number", "minimum": 2, "maximum": 3})), json!(2.5));
        assert_eq!(make(json!({"type": "number", "exclusiveMaximum": 1})), json!(0.0));
        assert_eq!(make(json!({"type": "number", "multipleOf": 0.25, "minimum": 1.6})), json!(1.75));
        assert_eq!(make(json!({"maximum": 1e308, "minimum": 1e308 })), json!(1e308));
    }

    #[test]
    fn arrays_respect_min_and_max_items_and_their_items_differ() {
        assert_eq!(make(json!({"type": "array", "items": {"type": "integer"}})), json!([1]));
        assert_eq!(
            make(json!({"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 3})),
            json!(["a", "b", "a"])
        );
        assert_eq!(make(json!({"type": "array", "maxItems": 0})), json!([]));
        assert_eq!(make(json!({"items": {"type": "string"}, "minItems": 2})), json!(["Paris today", "Paris today 2"]));
        assert_eq!(
            make(json!({"prefixItems": [{"type": "integer"}, {"const": "x"}], "items": false})),
            json!([1, "x"])
        );
        assert_eq!(
            make(json!({"items": [{"type": "boolean"}, {"type": "null"}]})),
            json!([true, null]),
            "draft 7 tuple"
        );
        let huge = make(json!({"type": "array", "items": {"type": "integer"}, "minItems": 1_000_000_000u64}));
        assert_eq!(huge.as_array().unwrap().len(), MAX_ITEMS);
    }

    #[test]
    fn alternatives_enums_consts_and_type_lists() {
        assert_eq!(make(json!({"anyOf": [{"type": "null"}, {"type": "integer"}]})), json!(1));
        assert_eq!(make(json!({"oneOf": [{"const": "first"}, {"const": "second"}]})), json!("first"));
        assert_eq!(make(json!({"type": ["null", "boolean"]})), json!(true));
        assert_eq!(make(json!({"type": ["null"]})), json!(null));
        assert_eq!(make(json!({"const": {"nested": [1, 2]}})), json!({"nested": [1, 2]}));
        assert_eq!(make(json!({"type": "string", "enum": ["low", "high"]})), json!("low"));
        let merged = make(json!({"allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"properties": {"b": {"const": true}}, "required": ["b"]},
        ]}));
        assert_eq!(merged, json!({"a": 1, "b": true}));
        assert_eq!(make(json!(true)), json!("Paris today"));
        assert_eq!(make(json!(false)), json!(null));
    }

    #[test]
    fn references_resolve_within_the_document() {
        let schema = json!({
            "type": "object",
            "properties": {
                "home": {"$ref": "#/$defs/Address"},
                "work": {"$ref": "#/definitions/Address"},
                "missing": {"$ref": "https://example.com/elsewhere.json"},
            },
            "required": ["home", "work", "missing"],
            "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": "string", "format": "date"}}, "required": ["zip"]}},
            "definitions": {"Address": {"$ref": "#/$defs/Address"}},
        });
        let v = make(schema);
        assert_eq!(v["home"], json!({"zip": "2024-01-15"}));
        assert_eq!(v["work"], v["home"]);
        assert_eq!(v["missing"], json!("Paris today"));
    }

    #[test]
    fn a_recursive_schema_ends() {
        // a tree whose children are optional: deep down only what is required is built
        let tree = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
            "required": ["name"],
        });
        let v = make(tree);
        let mut depth = 0;
        let mut node = &v;
        while let Some(child) = node.get("children").and_then(|c| c.get(0)) {
            depth += 1;
            node = child;
        }
        assert!((1..=OPTIONAL_DEPTH).contains(&depth), "{depth}: {v}");
        assert_eq!(node["name"], "Paris today");

        // a list that must go on forever: it ends where the references run out, with null where
        // the schema allows it, else the smallest value
        let linked = json!({
            "$defs": {"Node": {"type": "object", "properties": {
                "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                "also": {"$ref": "#/$defs/Node"},
            }, "required": ["next", "also"]}},
            "$ref": "#/$defs/Node",
        });
        let v = make(linked);
        assert!(v.to_string().len() < MAX_BYTES, "{v}");
        let mut depth = 0;
        let mut node = &v;
        while let Some(next) = node.get("also").filter(|n| n.is_object()) {
            depth += 1;
            node = next;
        }
        assert!(depth <= MAX_REFS, "{depth}: {v}");
        assert_eq!(node, &json!({}), "{v}");
        // a reference to itself and nothing else
        assert_eq!(make(json!({"$ref": "#"})), json!(null));
        assert_eq!(
            make(json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})),
            json!(null)
        );
    }

    #[test]
    fn a_hostile_schema_gets_a_bounded_value() {
        // nested as deep as a parsed body can be (serde_json stops at 128 levels): past the
        // depth cap every value is the smallest of its type
        let mut deep = json!({"type": "string"});
        for _ in 0..40 {
            deep = json!({"type": "object", "properties": {"x": deep}, "required": ["x"]});
        }
        let v = make(deep);
        let mut depth = 0;
        let mut node = &v;
        while let Some(x) = node.get("x") {
            depth += 1;
            node = x;
        }
        assert_eq!(depth, MAX_DEPTH + 1);
        assert_eq!(node, &json!({}));
        // arrays of arrays of long strings, each asking for a billion: capped in items, length
        // and the size of the whole
        let wide = json!({"type": "array", "minItems": 1_000_000_000u64, "items": {
            "type": "array", "minItems": 1_000_000_000u64, "items": {
                "type": "array", "minItems": 1_000_000_000u64, "items": {"type": "string", "minLength": 1_000_000_000u64}}}});
        let text = make(wide).to_string();
        assert!(text.len() <= MAX_BYTES + MAX_STRING * 2, "{}", text.len());
        // many required properties: all there (the value would be wrong without them), but small
        let names: Vec<String> = (0..5_000).map(|i| format!("p{i}")).collect();
        let props: Map<String, Value> =
            names.iter().map(|n| (n.clone(), json!({"type": "string", "minLength": 200}))).collect();
        let v = make(json!({"type": "object", "properties": props, "required": names}));
        assert_eq!(v.as_object().unwrap().len(), 5_000);
        assert!(v.to_string().len() < MAX_BYTES * 2, "{}", v.to_string().len());
        // an enum whose only value is huge: not copied past the budget
        let big = "x".repeat(MAX_BYTES * 2);
        assert_eq!(make(json!({"enum": [big]})), json!(null));
        assert_eq!(make(json!({"enum": [big, "small"]})), json!("small"));
    }

    #[test]
    fn open_objects_are_told_apart_from_constrained_ones() {
        for open in [
            json!({"type": "object"}),
            json!({"type": "object", "properties": {}}),
            json!(null),
            json!({}),
            json!({"type": "object", "description": "d", "additionalProperties": true}),
        ] {
            assert!(is_open_object(&open), "{open}");
        }
        for closed in [
            json!({"type": "object", "properties": {"a": {}}}),
            json!({"type": "object", "required": ["a"]}),
            json!({"$ref": "#/$defs/A"}),
            json!({"type": "object", "additionalProperties": false}),
            json!({"type": "string"}),
        ] {
            assert!(!is_open_object(&closed), "{closed}");
        }
    }
}
