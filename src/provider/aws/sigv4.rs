//! AWS Signature Version 4 for request headers: [`sign`] for the Bedrock adapter, [`verify`] for
//! the simulator, over one definition of the canonical request so the two cannot drift apart.
//!
//! Sans-IO: a request is its method, path and query as sent, headers and body; time is a parameter.
//! The rules are those the AWS SDKs apply to every service other than S3, Bedrock among them: the
//! path is normalized (`.`/`..` and empty segments removed) and each byte outside the unreserved set
//! is percent-encoded once more, so a model id sent as `…v1%3A0` is signed as `…v1%253A0`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};

use super::Credentials;
use crate::secret::ApiKey;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";

/// How far a request's `x-amz-date` may be from the receiver's clock, either way, before AWS refuses
/// it as expired (or not yet current).
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// A request as it goes on the wire (to sign) or as it came off it (to verify).
///
/// No `Debug`: the headers may hold a session token.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    /// `POST`.
    pub(crate) method: &'a str,
    /// Path and query exactly as sent, percent-encoded:
    /// `/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke` ([`encode_path_segment`] makes a
    /// model id such a segment, as the SDKs do).
    pub(crate) path_and_query: &'a str,
    /// To sign: the headers the signature covers, `host` among them (AWS refuses a signature without
    /// it), and none a proxy may change (`user-agent`, `content-length`, hop-by-hop ones). To verify:
    /// every header received; those the `Authorization` header names are used.
    pub(crate) headers: &'a [(&'a str, &'a str)],
    /// The body; its SHA-256 is signed.
    pub(crate) body: &'a [u8],
}

/// Where a signature is valid: the region, and the service's signing name (`bedrock` for the
/// `bedrock-runtime` endpoint: see [`super::BEDROCK_SIGNING_NAME`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope<'a> {
    /// `us-east-1`.
    pub(crate) region: &'a str,
    /// `bedrock`.
    pub(crate) service: &'a str,
}

/// The headers [`sign`] adds to a request.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    /// `x-amz-date`: when, `20251001T123456Z`.
    pub(crate) amz_date: String,
    /// `x-amz-security-token`: the session token of temporary credentials.
    pub(crate) security_token: Option<ApiKey>,
    /// `authorization`.
    pub(crate) authorization: String,
}

impl Signed {
    /// The headers to add, by lower-case name. The token is a secret: mark its header value
    /// sensitive where the client can.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("x-amz-date", self.amz_date.as_str())),
            self.security_token.as_ref().map(|t| ("x-amz-security-token", t.expose())),
            Some(("authorization", self.authorization.as_str())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Signs `request` as `credentials` for `scope` at `time`, as botocore does: the signature covers
/// the given headers, `x-amz-date` and (with a session token) `x-amz-security-token`, and the body's
/// SHA-256 (no `x-amz-content-sha256` header: the SDKs send it to S3 only). Any `authorization`,
/// `x-amz-date` or `x-amz-security-token` among the headers is replaced, not signed.
pub(crate) fn sign(request: &Request<'_>, credentials: &Credentials, scope: Scope<'_>, time: SystemTime) -> Signed {
    let amz_date = format_amz_date(time);
    let mut headers: Vec<(String, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), *value))
        .filter(|(name, _)| !matches!(name.as_str(), "authorization" | "x-amz-date" | "x-amz-security-token"))
        .collect();
    headers.push(("x-amz-date".to_owned(), &amz_date));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".to_owned(), token.expose()));
    }
    let (canonical, signed_headers) = canonical_request(request.method, request.path_and_query, &headers, request.body);
    let key = signing_key(&credentials.secret_access_key, &amz_date[..8], scope);
    let signature = hex(hmac::sign(&key, string_to_sign(&amz_date, scope, &canonical).as_bytes()).as_ref());
    let authorization = format!(
        "{ALGORITHM} Credential={}/{}/{}/{}/{TERMINATOR}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id,
        &amz_date[..8],
        scope.region,
        scope.service
    );
    Signed { amz_date, security_token: credentials.session_token.clone(), authorization }
}

/// Why AWS would refuse a request's signature. [`VerifyError::code`] is the exception AWS names (in
/// the `x-amzn-ErrorType` header of a REST-JSON service like Bedrock), `Display` its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header AWS cannot read, or one that leaves out what it must cover.
    Incomplete(String),
    /// A signature scoped to another date, region or service.
    Scope(String),
    /// An access key id, or session token, the receiver does not know.
    UnknownClient,
    /// Signed too long ago (`expired`) or too far ahead of the receiver's clock.
    Skew {
        /// The request's `x-amz-date`.
        signed: String,
        /// The receiver's clock, in the same format.
        now: String,
        /// Whether it was signed too long ago, not ahead.
        expired: bool,
    },
    /// A signature that does not match the request.
    Mismatch,
}

impl VerifyError {
    /// The exception type AWS answers with.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            VerifyError::Missing => "MissingAuthenticationTokenException",
            VerifyError::Incomplete(_) => "IncompleteSignatureException",
            VerifyError::UnknownClient => "UnrecognizedClientException",
            VerifyError::Scope(_) | VerifyError::Skew { .. } | VerifyError::Mismatch => "InvalidSignatureException",
        }
    }

    /// The HTTP status AWS answers with.
    pub(crate) fn status(&self) -> u16 {
        match self {
            VerifyError::Incomplete(_) => 400,
            _ => 403,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Missing => f.write_str("Missing Authentication Token"),
            VerifyError::Incomplete(m) | VerifyError::Scope(m) => f.write_str(m),
            VerifyError::UnknownClient => f.write_str("The security token included in the request is invalid."),
            VerifyError::Skew { signed, now, expired: true } => {
                let limit = shift(now, MAX_SKEW, false);
                write!(f, "Signature expired: {signed} is now earlier than {limit} ({now} - 5 min.)")
            }
            VerifyError::Skew { signed, now, expired: false } => {
                let limit = shift(now, MAX_SKEW, true);
                write!(f, "Signature not yet current: {signed} is still later than {limit} ({now} + 5 min.)")
            }
            VerifyError::Mismatch => f.write_str(
                "The request signature we calculated does not match the signature you provided. Check your AWS \
                 Secret Access Key and signing method. Consult the service documentation for details.",
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Checks `request`'s signature as AWS does for a service in `scope`, with `known` the credentials
/// it accepts and `now` its clock: the `Authorization` header names the key, the scope and the
/// signed headers; the signature is recomputed from those headers as received and compared. The
/// access key is `Ok`.
pub(crate) fn verify<'k>(
    request: &Request<'_>,
    known: &'k [Credentials],
    scope: Scope<'_>,
    now: SystemTime,
) -> Result<&'k Credentials, VerifyError> {
    let header = |name: &str| {
        let mut values = request.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v);
        let first = values.next()?;
        Some(values.fold(first.to_owned(), |all, v| all + "," + v))
    };
    let authorization = header("authorization").ok_or(VerifyError::Missing)?;
    let auth = Authorization::parse(&authorization)?;
    let amz_date = header("x-amz-date").ok_or_else(|| {
        VerifyError::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".to_owned(),
        )
    })?;
    let Some(signed_at) = parse_amz_date(&amz_date) else {
        return Err(VerifyError::Incomplete(format!("Date must be in ISO-8601 'basic format'. Got '{amz_date}'.")));
    };
    if !auth.signed_headers.contains(&"host") {
        return Err(VerifyError::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    if auth.date != &amz_date[..8] {
        return Err(VerifyError::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', \
             from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.region != scope.region {
        return Err(VerifyError::Scope(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        )));
    }
    if auth.service != scope.service {
        return Err(VerifyError::Scope(format!(
            "Credential should be scoped to correct service: '{}'. ",
            scope.service
        )));
    }
    if auth.terminator != TERMINATOR {
        return Err(VerifyError::Scope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'. ",
            auth.terminator
        )));
    }
    let credentials = known.iter().find(|c| c.access_key_id == auth.access_key_id).ok_or(VerifyError::UnknownClient)?;
    let token = header("x-amz-security-token");
    if token.as_deref() != credentials.session_token.as_ref().map(ApiKey::expose) {
        return Err(VerifyError::UnknownClient);
    }
    let skew = |later: SystemTime, earlier: SystemTime| later.duration_since(earlier).is_ok_and(|d| d > MAX_SKEW);
    if skew(now, signed_at) || skew(signed_at, now) {
        return Err(VerifyError::Skew { signed: amz_date, now: format_amz_date(now), expired: skew(now, signed_at) });
    }

    let headers: Vec<(String, String)> =
        auth.signed_headers.iter().map(|name| (name.to_ascii_lowercase(), header(name).unwrap_or_default())).collect();
    let headers: Vec<(String, &str)> = headers.iter().map(|(n, v)| (n.clone(), v.as_str())).collect();
    let (canonical, _) = canonical_request(request.method, request.path_and_query, &headers, request.body);
    let key = signing_key(&credentials.secret_access_key, auth.date, scope);
    let given = unhex(auth.signature).ok_or(VerifyError::Mismatch)?;
    // hmac::verify compares in constant time
    hmac::verify(&key, string_to_sign(&amz_date, scope, &canonical).as_bytes(), &given)
        .map_err(|_| VerifyError::Mismatch)?;
    Ok(credentials)
}

/// A model id (or inference-profile ARN) as one path segment, the way the SDKs put it in a Bedrock
/// URL: every byte but `A-Z a-z 0-9 - _ . ~` percent-encoded, `:` and `/` included.
pub(crate) fn encode_path_segment(segment: &str) -> String {
    uri_encode(segment.as_bytes(), true)
}

/// The parts of an `Authorization` header.
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    terminator: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(value: &'a str) -> Result<Self, VerifyError> {
        let incomplete = |m: String| VerifyError::Incomplete(m);
        let Some(rest) = value.strip_prefix(ALGORITHM).filter(|r| r.starts_with(' ')) else {
            let algorithm = value.split(' ').next().unwrap_or_default();
            return Err(incomplete(format!("Unsupported AWS 'algorithm': '{algorithm}'")));
        };
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed_headers = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let mut missing = String::new();
        for (name, value) in [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed_headers)] {
            if value.is_none() {
                missing += &format!("Authorization header requires '{name}' parameter. ");
            }
        }
        let (Some(credential), Some(signed_headers), Some(signature)) = (credential, signed_headers, signature) else {
            return Err(incomplete(format!("{missing}Authorization={ALGORITHM}")));
        };
        let parts: Vec<&str> = credential.split('/').collect();
        let [access_key_id, date, region, service, terminator] = parts[..] else {
            return Err(incomplete(format!(
                "Credential should have at least 5 slash-separated parts, not {}. Authorization={ALGORITHM}",
                parts.len()
            )));
        };
        Ok(Authorization {
            access_key_id,
            date,
            region,
            service,
            terminator,
            signed_headers: signed_headers.split(';').collect(),
            signature,
        })
    }
}

/// The canonical request of SigV4, and its `SignedHeaders` list. `headers` are the signed ones,
/// their names in lower case (repeated names are joined, as AWS does, with `,`).
fn canonical_request(method: &str, path_and_query: &str, headers: &[(String, &str)], body: &[u8]) -> (String, String) {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = format!("{}\n{}\n{}\n", method.to_ascii_uppercase(), canonical_path(path), canonical_query(query));
    for name in &names {
        out.push_str(name);
        out.push(':');
        let values = headers.iter().filter(|(n, _)| n == name).map(|(_, v)| trim_all(v));
        out.push_str(&values.collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    let signed_headers = names.join(";");
    out.push('\n');
    out.push_str(&signed_headers);
    out.push('\n');
    out.push_str(&hex(digest::digest(&digest::SHA256, body).as_ref()));
    (out, signed_headers)
}

/// Trimmed, runs of spaces made one.
fn trim_all(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// RFC 3986's dot segments removed, and empty segments too (AWS services want `//` gone), then
/// encoded again: the rule of every service but S3.
fn canonical_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), false)
}

/// Each `name=value` decoded then encoded (so a query sent encoded and one sent raw sign alike),
/// sorted by name then value; a name without `=` has an empty value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(name), true), uri_encode(&percent_decode(value), true))
        })
        .collect();
    pairs.sort_unstable();
    pairs.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&")
}

fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (b == b'/' && !encode_slash) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` decoded; a `%` not followed by two hex digits is kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

fn string_to_sign(amz_date: &str, scope: Scope<'_>, canonical_request: &str) -> String {
    let hash = hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref());
    format!("{ALGORITHM}\n{amz_date}\n{}/{}/{}/{TERMINATOR}\n{hash}", &amz_date[..8], scope.region, scope.service)
}

fn signing_key(secret: &ApiKey, date: &str, scope: Scope<'_>) -> hmac::Key {
    let step = |key: &[u8], data: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes());
    let k_date = step(format!("AWS4{}", secret.expose()).as_bytes(), date);
    let k_region = step(k_date.as_ref(), scope.region);
    let k_service = step(k_region.as_ref(), scope.service);
    let k_signing = step(k_service.as_ref(), TERMINATOR);
    hmac::Key::new(hmac::HMAC_SHA256, k_signing.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// `20150830T123600Z`: ISO 8601 basic format, UTC. A time before 1970 (no clock says so) is 1970.
fn format_amz_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if !s.is_ascii() || b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let digits = &s[r];
        digits.bytes().all(|c| c.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if y < 1970 || !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 20250231 would be a day in March: refuse a date that does not exist
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(days * 86_400 + hh * 3600 + mm * 60 + ss))
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's algorithm, unsigned).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let (era, yoe) = (y / 400, y % 400);
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

/// `amz_date` moved by `by`, in the same format (for the skew messages).
fn shift(amz_date: &str, by: Duration, later: bool) -> String {
    let t = parse_amz_date(amz_date).unwrap_or(UNIX_EPOCH);
    format_amz_date(if later { t + by } else { t.checked_sub(by).unwrap_or(UNIX_EPOCH) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLETOKEN/+==";
    const HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";
    const BODY: &[u8] =
        br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}"#;
    const BEDROCK: Scope<'static> = Scope { region: "us-east-1", service: super::super::BEDROCK_SIGNING_NAME };

    /// 2025-10-01T12:34:56Z, the time of the botocore vectors.
    fn when() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_759_322_096)
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's published examples.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn creds(token: bool) -> Credentials {
        Credentials::new(ACCESS_KEY, ApiKey::new(SECRET_KEY), token.then(|| ApiKey::new(SESSION_TOKEN)))
    }

    // Generated by scripts/aws-vectors.py (botocore 1.44.18), which checks that botocore's
    // `SigV4Auth` signs each exactly as the real bedrock-runtime client does for InvokeModel and
    // InvokeModelWithResponseStream (the request captured before sending).
    // (path, streaming, with session token, Authorization botocore sends)
    const BOTOCORE_BEDROCK: &[(&str, bool, bool, &str)] = &[
        (
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=4b5f226f6b632157a89151161a93f7531a0bef4f0d3196ae3aa4a56573da42b7",
        ),
        (
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amzn-bedrock-accept, Signature=3d867333311993a1f5aa5c60af95d8ae62a63165b7b46eabea831e3e94c3458c",
        ),
        (
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=9feb0af0af818ada6f3a91e8ad488c2f05430586f0c6bc1a00b29874910e4230",
        ),
        (
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amzn-bedrock-accept, Signature=8fe9e4eb28f2c083ab2fe9e7c93ab24925d6ad96af67faf453ba88e3b8368474",
        ),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=6f4f725f73cc1d78c314988e2a7055b52c55272da5c45788331ede88c55ad98f",
        ),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            false,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amzn-bedrock-accept, Signature=753424032cda7afbd66a7a2505b3f92ef2ca22c9b417240155198b96cf0e1842",
        ),
        (
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=01baa90b4b30bb0ce8820f8d53aca1c2ede40a2bbb77b63c5bba176345ddfc70",
        ),
        (
            "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amzn-bedrock-accept, Signature=013c75b21e297d2451fabbece03ec5eaeda19fdb89f6dc513bc1fa24fb1e2b55",
        ),
        (
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=a0c97a3d7791ccbef264ca962a38d3253926beef50955d50d30dcb4f803ef161",
        ),
        (
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amzn-bedrock-accept, Signature=58c3b486500510b6395d655ba5657303e85a039b8ed045553fc2da18f623e80c",
        ),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
            false,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;x-amz-security-token, Signature=219f7c4feb0b8807919918dd986fa3e32663cc944a8b02d279cbef01c5389f63",
        ),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            true,
            true,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amzn-bedrock-accept, Signature=b43207f316265000bb2a13fe22e269ffa2e162041507ea2ebb5a92351934da41",
        ),
    ];
    // botocore's canonical request for the ARN, InvokeModel, no session token
    const BOTOCORE_CANONICAL_ARN: &str = "POST\n/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253Ainference-profile%252Fus.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke\n\naccept:application/json\ncontent-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20251001T123456Z\n\naccept;content-type;host;x-amz-date\n9329b36c40ffa765265d99a4a0323f8b89dee097170fe4361ffb4832ef37ee8f";

    const MODELS: [&str; 3] = [
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ];

    /// The headers the SDK signs for each operation (the streaming one moves `accept` to
    /// `x-amzn-bedrock-accept`, the HTTP `Accept` being the event stream's).
    fn bedrock_headers(stream: bool) -> [(&'static str, &'static str); 3] {
        let accept = if stream { "x-amzn-bedrock-accept" } else { "accept" };
        [("host", HOST), ("content-type", "application/json"), (accept, "application/json")]
    }

    #[test]
    fn signs_bedrock_requests_as_botocore_does() {
        for &(path, stream, token, expected) in BOTOCORE_BEDROCK {
            let headers = bedrock_headers(stream);
            let request = Request { method: "POST", path_and_query: path, headers: &headers, body: BODY };
            let signed = sign(&request, &creds(token), BEDROCK, when());
            assert_eq!(signed.authorization, expected, "{path} stream={stream} token={token}");
            let added: Vec<(&str, &str)> = signed.headers().collect();
            let mut want = vec![("x-amz-date", "20251001T123456Z")];
            if token {
                want.push(("x-amz-security-token", SESSION_TOKEN));
            }
            want.push(("authorization", expected));
            assert_eq!(added, want);
        }
    }

    #[test]
    fn model_ids_are_encoded_as_the_sdk_does_and_encoded_again_to_sign() {
        // the same paths botocore built from the plain ids
        for (model, &(path, ..)) in MODELS.iter().zip(BOTOCORE_BEDROCK.iter().step_by(2)) {
            assert_eq!(format!("/model/{}/invoke", encode_path_segment(model)), path);
        }
        let path = BOTOCORE_BEDROCK[4].0;
        let headers: Vec<(String, &str)> = [("accept", "application/json"), ("content-type", "application/json")]
            .into_iter()
            .chain([("host", HOST), ("x-amz-date", "20251001T123456Z")])
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        let (canonical, signed) = canonical_request("POST", path, &headers, BODY);
        assert_eq!(canonical, BOTOCORE_CANONICAL_ARN);
        assert_eq!(signed, "accept;content-type;host;x-amz-date");
    }

    #[test]
    fn reproduces_the_published_aws_examples() {
        // aws-sig-v4-test-suite (example.amazonaws.com, service "service") and the IAM ListUsers
        // example of the SigV4 documentation; scripts/aws-vectors.py checks botocore agrees
        struct Example {
            name: &'static str,
            path_and_query: &'static str,
            headers: &'static [(&'static str, &'static str)],
            body: &'static [u8],
            service: &'static str,
            signed_headers: &'static str,
            signature: &'static str,
        }
        let plain = |name, path_and_query, signature| Example {
            name,
            path_and_query,
            headers: &[],
            body: b"",
            service: "service",
            signed_headers: "host;x-amz-date",
            signature,
        };
        let suite = [
            plain("get-vanilla", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            plain("post-vanilla", "/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            plain(
                "get-vanilla-query-order-key-case",
                "/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            Example {
                name: "post-x-www-form-urlencoded",
                headers: &[("Content-Type", "application/x-www-form-urlencoded")],
                body: b"Param1=value1",
                signed_headers: "content-type;host;x-amz-date",
                ..plain("", "/", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
            },
            // the suite sends the path raw, UTF-8: encoded once to sign
            plain("get-utf8", "/\u{1234}", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
            Example {
                name: "iam-list-users",
                headers: &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                service: "iam",
                signed_headers: "content-type;host;x-amz-date",
                ..plain(
                    "",
                    "/?Action=ListUsers&Version=2010-05-08",
                    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
                )
            },
        ];
        for Example { name, path_and_query, headers: extra, body, service, signed_headers, signature } in suite {
            let host = if service == "iam" { "iam.amazonaws.com" } else { "example.amazonaws.com" };
            let method = if name.starts_with("post") { "POST" } else { "GET" };
            let mut headers = vec![("Host", host)];
            headers.extend_from_slice(extra);
            let request = Request { method, path_and_query, headers: &headers, body };
            let signed = sign(&request, &creds(false), Scope { region: "us-east-1", service }, suite_time());
            assert_eq!(
                signed.authorization,
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, \
                     SignedHeaders={signed_headers}, Signature={signature}"
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn canonical_paths_and_queries() {
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/"), "/");
        assert_eq!(canonical_path("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(canonical_path("/.."), "/");
        assert_eq!(canonical_path("/a b/%7E~"), "/a%20b/%257E~");
        assert_eq!(canonical_query("b=2&a=1&A=0&a=0"), "A=0&a=0&a=1&b=2");
        // sent encoded or raw, a query signs the same
        assert_eq!(canonical_query("k=a%20b&flag"), "flag=&k=a%20b");
        assert_eq!(canonical_query("k=a b"), "k=a%20b");
        assert_eq!(canonical_query("k=%zz+"), "k=%25zz%2B");
        assert_eq!(trim_all("  a   b\t c "), "a b c");
    }

    #[test]
    fn amz_dates() {
        assert_eq!(format_amz_date(suite_time()), "20150830T123600Z");
        assert_eq!(format_amz_date(when()), "20251001T123456Z");
        assert_eq!(format_amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(format_amz_date(UNIX_EPOCH + Duration::from_secs(951_782_400)), "20000229T000000Z");
        for t in [suite_time(), when(), UNIX_EPOCH, UNIX_EPOCH + Duration::from_secs(4_102_444_799)] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
        for bad in [
            "20250231T000000Z",
            "20251301T000000Z",
            "20251001T240000Z",
            "2025-10-01T12:34:56Z",
            "+0251001T123456Z",
            "20251001T123456",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    /// The headers a client sends after signing `path` with `creds` at `at`.
    fn signed_request(path: &str, creds: &Credentials, at: SystemTime) -> Vec<(String, String)> {
        let headers = bedrock_headers(false);
        let request = Request { method: "POST", path_and_query: path, headers: &headers, body: BODY };
        let signed = sign(&request, creds, BEDROCK, at);
        let mut all: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        // as a server sees them: any case, with unsigned ones besides
        all.push(("User-Agent".into(), "switchyard".into()));
        all.push(("Content-Length".into(), BODY.len().to_string()));
        all.extend(signed.headers().map(|(n, v)| (n.to_ascii_uppercase(), v.to_owned())));
        all
    }

    fn check(
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
        known: &[Credentials],
        now: SystemTime,
    ) -> Result<(), VerifyError> {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let request = Request { method: "POST", path_and_query: path, headers: &headers, body };
        verify(&request, known, BEDROCK, now).map(|_| ())
    }

    #[test]
    fn the_verifier_accepts_what_the_signer_signs() {
        for token in [false, true] {
            let path = BOTOCORE_BEDROCK[4].0;
            let headers = signed_request(path, &creds(token), when());
            let known = [Credentials::new("AKIDOTHER", ApiKey::new("x"), None), creds(token)];
            assert_eq!(check(path, &headers, BODY, &known, when()), Ok(()));
            // within the skew, either way
            assert_eq!(check(path, &headers, BODY, &known, when() + MAX_SKEW), Ok(()));
            assert_eq!(check(path, &headers, BODY, &known, when() - MAX_SKEW), Ok(()));
        }
        // and what botocore signed
        let &(path, _, _, authorization) = &BOTOCORE_BEDROCK[0];
        let headers: Vec<(String, String)> = bedrock_headers(false)
            .iter()
            .chain(&[("X-Amz-Date", "20251001T123456Z"), ("Authorization", authorization)])
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(check(path, &headers, BODY, &[creds(false)], when()), Ok(()));
    }

    #[test]
    fn the_verifier_rejects_what_aws_rejects() {
        let path = BOTOCORE_BEDROCK[4].0;
        let headers = signed_request(path, &creds(false), when());
        let known = [creds(false)];
        let mismatch = Err(VerifyError::Mismatch);

        assert_eq!(check(path, &headers, b"{\"max_tokens\":1}", &known, when()), mismatch);
        assert_eq!(check(BOTOCORE_BEDROCK[0].0, &headers, BODY, &known, when()), mismatch);
        // the path as a client that forgot to encode the model id sends it
        let raw = "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke";
        assert_eq!(check(raw, &headers, BODY, &known, when()), mismatch);
        let wrong_secret = [Credentials::new(ACCESS_KEY, ApiKey::new("not-the-secret"), None)];
        assert_eq!(check(path, &headers, BODY, &wrong_secret, when()), mismatch);
        let mut changed = headers.clone();
        changed[1].1 = "text/plain".into(); // content-type, signed
        assert_eq!(check(path, &changed, BODY, &known, when()), mismatch);
        let mut unsigned = headers.clone();
        unsigned[3].1 = "another-agent".into(); // user-agent, not signed
        assert_eq!(check(path, &unsigned, BODY, &known, when()), Ok(()));

        let e = check(path, &headers, BODY, &[], when()).unwrap_err();
        assert_eq!((e.code(), e.status()), ("UnrecognizedClientException", 403));
        assert_eq!(e.to_string(), "The security token included in the request is invalid.");
        // temporary credentials without their token, or long-term ones with one
        assert_eq!(check(path, &headers, BODY, &[creds(true)], when()), Err(VerifyError::UnknownClient));
        let with_token = signed_request(path, &creds(true), when());
        assert_eq!(check(path, &with_token, BODY, &known, when()), Err(VerifyError::UnknownClient));
    }

    #[test]
    fn a_signature_older_or_newer_than_five_minutes_is_refused() {
        let path = BOTOCORE_BEDROCK[0].0;
        let headers = signed_request(path, &creds(false), when());
        let known = [creds(false)];
        let late = when() + MAX_SKEW + Duration::from_secs(1);
        let e = check(path, &headers, BODY, &known, late).unwrap_err();
        assert_eq!(e.code(), "InvalidSignatureException");
        assert_eq!(
            e.to_string(),
            "Signature expired: 20251001T123456Z is now earlier than 20251001T123457Z (20251001T123957Z - 5 min.)"
        );
        let early = when() - MAX_SKEW - Duration::from_secs(1);
        let e = check(path, &headers, BODY, &known, early).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Signature not yet current: 20251001T123456Z is still later than 20251001T123455Z (20251001T122955Z + 5 min.)"
        );
    }

    #[test]
    fn malformed_authorization_is_refused_as_aws_does() {
        let path = BOTOCORE_BEDROCK[0].0;
        let known = [creds(false)];
        let base = signed_request(path, &creds(false), when());
        let with = |auth: &str| {
            let mut h: Vec<(String, String)> = base.iter().filter(|(n, _)| n != "AUTHORIZATION").cloned().collect();
            if !auth.is_empty() {
                h.push(("authorization".into(), auth.into()));
            }
            check(path, &h, BODY, &known, when())
        };
        let e = with("").unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("MissingAuthenticationTokenException", "Missing Authentication Token")
        );
        let e = with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251001/us-east-1/bedrock/aws4_request").unwrap_err();
        assert_eq!((e.code(), e.status()), ("IncompleteSignatureException", 400));
        assert!(
            e.to_string().contains("requires 'Signature' parameter") && e.to_string().contains("'SignedHeaders'"),
            "{e}"
        );
        let e = with("Bearer abc").unwrap_err();
        assert_eq!(e.code(), "IncompleteSignatureException");
        let good = BOTOCORE_BEDROCK[0].3;
        let e = with(&good.replace("host;", "")).unwrap_err();
        assert_eq!(e.to_string(), "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
        let e = with(&good.replace("us-east-1", "us-west-2")).unwrap_err();
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("InvalidSignatureException", "Credential should be scoped to a valid region, not 'us-west-2'. ")
        );
        let e = with(&good.replace("/bedrock/", "/bedrock-runtime/")).unwrap_err();
        assert_eq!(e.to_string(), "Credential should be scoped to correct service: 'bedrock'. ");
        let e = with(&good.replace("20251001/", "20251002/")).unwrap_err();
        assert!(e.to_string().starts_with("Date in Credential scope does not match"), "{e}");
        assert_eq!(with(&good.replace("Signature=4b", "Signature=zz")), Err(VerifyError::Mismatch));
        assert_eq!(with(&good[..good.len() - 1]), Err(VerifyError::Mismatch));
        assert_eq!(with(good), Ok(()));
    }

    #[test]
    fn no_secret_in_debug_or_errors() {
        let signed = sign(
            &Request { method: "POST", path_and_query: "/", headers: &[("host", HOST)], body: b"" },
            &creds(true),
            BEDROCK,
            when(),
        );
        let shown = format!("{signed:?}");
        assert!(!shown.contains(SESSION_TOKEN) && !shown.contains(SECRET_KEY), "{shown}");
    }
}
