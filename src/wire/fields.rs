//! Reading a wire body member by member: each member read is taken out of its object, so what is
//! left at the end is exactly what the codec has no typed place for (the `extra` the model keeps).
//! Every error names the member by its path (`messages[2].content[0].image_url`).

use serde_json::{Map, Value};

use crate::chat::Extra;

/// A JSON object being read, with its path for error messages.
///
/// JSON `null` reads as absent: SDKs send `null` for unset optional fields.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    path: String,
}

impl Fields {
    /// A request body, which must be a JSON object.
    pub(crate) fn root(value: Value) -> Result<Fields, String> {
        match value {
            Value::Object(map) => Ok(Fields { map, path: String::new() }),
            _ => Err("request body must be a JSON object".to_owned()),
        }
    }

    /// `value` as an object found at `path`.
    pub(crate) fn at(value: Value, path: String) -> Result<Fields, String> {
        match value {
            Value::Object(map) => Ok(Fields { map, path }),
            _ => Err(format!("invalid `{path}`: expected an object")),
        }
    }

    /// This object's path (empty at the root).
    pub(crate) fn here(&self) -> &str {
        &self.path
    }

    /// The path of a member of this object.
    pub(crate) fn path(&self, field: &str) -> String {
        if self.path.is_empty() { field.to_owned() } else { format!("{}.{field}", self.path) }
    }

    /// Takes a member; `None` when absent or `null`.
    pub(crate) fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    /// Looks at a member without taking it.
    pub(crate) fn peek(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// Takes a member that must be present.
    pub(crate) fn require(&mut self, field: &str) -> Result<Value, String> {
        self.take(field).ok_or_else(|| format!("missing required field `{}`", self.path(field)))
    }

    /// The error for a member of the wrong type or value.
    pub(crate) fn invalid(&self, field: &str, expected: &str) -> String {
        format!("invalid `{}`: expected {expected}", self.path(field))
    }

    /// An optional string.
    pub(crate) fn str(&mut self, field: &str) -> Result<Option<String>, String> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(field, "a string")),
        }
    }

    /// A required string.
    pub(crate) fn req_str(&mut self, field: &str) -> Result<String, String> {
        self.str(field)?.ok_or_else(|| format!("missing required field `{}`", self.path(field)))
    }

    /// An optional non-negative integer that fits a `u32`.
    pub(crate) fn u32(&mut self, field: &str) -> Result<Option<u32>, String> {
        self.take(field)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| self.invalid(field, "an integer from 0 to 2^32-1"))
            })
            .transpose()
    }

    /// An optional integer.
    pub(crate) fn i64(&mut self, field: &str) -> Result<Option<i64>, String> {
        self.take(field).map(|v| v.as_i64().ok_or_else(|| self.invalid(field, "an integer"))).transpose()
    }

    /// An optional number.
    pub(crate) fn f64(&mut self, field: &str) -> Result<Option<f64>, String> {
        self.take(field).map(|v| v.as_f64().ok_or_else(|| self.invalid(field, "a number"))).transpose()
    }

    /// An optional boolean.
    pub(crate) fn bool(&mut self, field: &str) -> Result<Option<bool>, String> {
        self.take(field).map(|v| v.as_bool().ok_or_else(|| self.invalid(field, "a boolean"))).transpose()
    }

    /// An optional object.
    pub(crate) fn object(&mut self, field: &str) -> Result<Option<Fields>, String> {
        let path = self.path(field);
        self.take(field).map(|v| Fields::at(v, path)).transpose()
    }

    /// An optional object kept whole (metadata, logit bias).
    pub(crate) fn map(&mut self, field: &str) -> Result<Option<Extra>, String> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(self.invalid(field, "an object")),
        }
    }

    /// The items of an optional array, each with its path (`tools[3]`).
    pub(crate) fn items(&mut self, field: &str) -> Result<Vec<(Value, String)>, String> {
        match self.take(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => {
                let base = self.path(field);
                Ok(items.into_iter().enumerate().map(|(i, v)| (v, format!("{base}[{i}]"))).collect())
            }
            Some(_) => Err(self.invalid(field, "an array")),
        }
    }

    /// The objects of an optional array, each with its path.
    pub(crate) fn objects(&mut self, field: &str) -> Result<Vec<Fields>, String> {
        self.items(field)?.into_iter().map(|(v, path)| Fields::at(v, path)).collect()
    }

    /// What was not taken: the members the codec has no typed place for.
    pub(crate) fn rest(self) -> Extra {
        self.map
    }

    /// Whether every member (`null` ones aside) is one of `known`: a part with any other member is
    /// kept whole rather than read in part.
    pub(crate) fn has_only(&self, known: &[&str]) -> bool {
        self.map.iter().all(|(k, v)| v.is_null() || known.contains(&k.as_str()))
    }

    /// Whether every member was taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The untaken members, put back as one JSON object (a part kept whole).
    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.map)
    }
}

/// `stop` (a string or an array of strings: `single`) or `stop_sequences` (an array).
pub(crate) fn strings(fields: &mut Fields, field: &str, single: bool) -> Result<Vec<String>, String> {
    let expected = if single { "a string or an array of strings" } else { "an array of strings" };
    match fields.take(field) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) if single => Ok(vec![s]),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(fields.invalid(field, expected)),
            })
            .collect(),
        Some(_) => Err(fields.invalid(field, expected)),
    }
}

/// What both wires' request bodies start with: the body, its `model` (the route, not empty), its
/// `stream` flag and its messages (not empty), each message still to be read.
pub(crate) fn request_head(body: Value) -> Result<(Fields, String, bool, Vec<Fields>), String> {
    let mut body = Fields::root(body)?;
    let route = body.req_str("model")?;
    if route.is_empty() {
        return Err("invalid `model`: must not be empty".to_owned());
    }
    let stream = body.bool("stream")?.unwrap_or(false);
    let messages = body.objects("messages")?;
    if messages.is_empty() {
        return Err("missing required field `messages` (a non-empty array)".to_owned());
    }
    Ok((body, route, stream, messages))
}

/// A request body as JSON.
pub(crate) fn json_body(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("request body is not valid JSON: {e}"))
}

/// A `data:` URL's media type and base64 payload (`data:image/png;base64,AAAA`).
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}
