//! AWS credentials, from the environment or the shared credentials file, as the AWS SDKs find them.
//!
//! The secret access key and the session token are [`ApiKey`]s: no `Debug`, error or log line
//! shows them. The access key id is no secret (every request's `Authorization` header names it), so
//! errors may name it; nothing here ever quotes a line of the credentials file, which may hold one.

use std::path::{Path, PathBuf};

use crate::secret::ApiKey;

/// The variables the AWS SDKs read, in this order of precedence over the shared file.
pub(crate) const ACCESS_KEY_ID_VAR: &str = "AWS_ACCESS_KEY_ID";
/// See [`ACCESS_KEY_ID_VAR`].
pub(crate) const SECRET_ACCESS_KEY_VAR: &str = "AWS_SECRET_ACCESS_KEY";
/// See [`ACCESS_KEY_ID_VAR`].
pub(crate) const SESSION_TOKEN_VAR: &str = "AWS_SESSION_TOKEN";

/// An AWS identity: long-term keys, or temporary ones with their session token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// `AKIA…` (long-term) or `ASIA…` (temporary); named in every signed request.
    pub(crate) access_key_id: String,
    /// What the signing key derives from; never sent.
    pub(crate) secret_access_key: ApiKey,
    /// Sent as `x-amz-security-token` with temporary credentials.
    pub(crate) session_token: Option<ApiKey>,
}

/// Why no credentials could be loaded: names the variable, file, profile or key at fault, never a
/// secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CredentialsError {
    /// Neither key variable is set.
    #[error("{ACCESS_KEY_ID_VAR} and {SECRET_ACCESS_KEY_VAR} are not set")]
    NoEnv,
    /// One key variable without the other.
    #[error("{set} is set but {missing} is not")]
    HalfEnv {
        /// The variable that is set.
        set: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// No file to look in.
    #[error("no AWS credentials file: neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set")]
    NoHome,
    /// The file cannot be read.
    #[error("cannot read the AWS credentials file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is no section, property, comment or blank (its text is not quoted: it may be a key).
    #[error("the AWS credentials file {} has a line that is not `[profile]` or `name = value`: line {line}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// The profile is not in the file.
    #[error("the AWS credentials file {} has no [{profile}] profile", path.display())]
    NoProfile {
        /// The file.
        path: PathBuf,
        /// The profile looked for.
        profile: String,
    },
    /// The profile lacks a key.
    #[error("profile [{profile}] of the AWS credentials file {} has no {key}", path.display())]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The profile.
        profile: String,
        /// The missing property (`aws_secret_access_key`).
        key: &'static str,
    },
    /// Neither source had credentials: why not, for each.
    #[error("no AWS credentials: {env}; and {file}")]
    NotFound {
        /// Why the environment had none.
        env: Box<CredentialsError>,
        /// Why the shared file had none.
        file: Box<CredentialsError>,
    },
}

impl Credentials {
    /// Credentials from their parts.
    pub(crate) fn new(
        access_key_id: impl Into<String>,
        secret_access_key: ApiKey,
        session_token: Option<ApiKey>,
    ) -> Self {
        Credentials { access_key_id: access_key_id.into(), secret_access_key, session_token }
    }

    /// What the AWS SDKs' default chain finds first: the environment ([`Credentials::from_env`]) when
    /// it names a key, else the shared credentials file ([`Credentials::from_shared_file`]).
    pub(crate) fn load() -> Result<Self, CredentialsError> {
        Self::load_with(&|name| std::env::var(name).ok())
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary credentials,
    /// `AWS_SESSION_TOKEN`.
    pub(crate) fn from_env() -> Result<Self, CredentialsError> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    /// The profile `AWS_PROFILE` (else `default`) of the file `AWS_SHARED_CREDENTIALS_FILE` (else
    /// `~/.aws/credentials`).
    pub(crate) fn from_shared_file() -> Result<Self, CredentialsError> {
        Self::from_shared_file_with(&|name| std::env::var(name).ok())
    }

    /// Profile `profile` of the credentials file at `path`.
    pub(crate) fn from_profile(path: &Path, profile: &str) -> Result<Self, CredentialsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CredentialsError::Read { path: path.to_owned(), source })?;
        Self::from_profile_text(&text, path, profile)
    }

    // The environment is read through `var` so tests need not change the process's own (which
    // edition 2024 makes unsafe, and the crate forbids).
    fn load_with(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        match Self::from_vars(var) {
            Ok(credentials) => Ok(credentials),
            // a half-set environment is a mistake to report, not a reason to use another identity
            Err(env @ CredentialsError::NoEnv) => Self::from_shared_file_with(var)
                .map_err(|file| CredentialsError::NotFound { env: Box::new(env), file: Box::new(file) }),
            Err(e) => Err(e),
        }
    }

    fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let get = |name| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let token = get(SESSION_TOKEN_VAR).map(ApiKey::new);
        match (get(ACCESS_KEY_ID_VAR), get(SECRET_ACCESS_KEY_VAR)) {
            (Some(id), Some(secret)) => Ok(Credentials::new(id, ApiKey::new(secret), token)),
            (Some(_), None) => {
                Err(CredentialsError::HalfEnv { set: ACCESS_KEY_ID_VAR, missing: SECRET_ACCESS_KEY_VAR })
            }
            (None, Some(_)) => {
                Err(CredentialsError::HalfEnv { set: SECRET_ACCESS_KEY_VAR, missing: ACCESS_KEY_ID_VAR })
            }
            (None, None) => Err(CredentialsError::NoEnv),
        }
    }

    fn from_shared_file_with(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, CredentialsError> {
        let set = |name| var(name).filter(|v| !v.trim().is_empty());
        let path = match (set("AWS_SHARED_CREDENTIALS_FILE"), set("HOME")) {
            (Some(file), _) => PathBuf::from(file),
            (None, Some(home)) => Path::new(&home).join(".aws").join("credentials"),
            (None, None) => return Err(CredentialsError::NoHome),
        };
        let profile = set("AWS_PROFILE").unwrap_or_else(|| "default".to_owned());
        Self::from_profile(&path, profile.trim())
    }

    /// The credentials file's INI dialect, as botocore reads it: `[name]` starts a profile (no
    /// `profile ` prefix in this file, unlike `~/.aws/config`), `name = value` (or `name: value`) sets a property (names
    /// in any case, values trimmed, `#` or `;` inside a value kept), `#` and `;` start comment lines,
    /// an indented line under a property with no value is a nested sub-property, and a profile given
    /// twice is merged, the later value winning.
    fn from_profile_text(text: &str, path: &Path, profile: &str) -> Result<Self, CredentialsError> {
        let mut in_profile = false;
        let mut found = false;
        let mut nested = false;
        let (mut id, mut secret, mut token) = (None, None, None);
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if nested && raw.starts_with([' ', '\t']) {
                continue;
            }
            nested = false;
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.rfind(']').map(|end| rest[..end].trim());
                let Some(name) = name.filter(|n| !n.is_empty()) else {
                    return Err(CredentialsError::Syntax { path: path.to_owned(), line: n + 1 });
                };
                in_profile = name == profile;
                found |= in_profile;
                continue;
            }
            // the first `=` or `:` ends the name, as in Python's configparser
            let Some(at) = line.find(['=', ':']) else {
                return Err(CredentialsError::Syntax { path: path.to_owned(), line: n + 1 });
            };
            let (key, value) = (line[..at].trim().to_ascii_lowercase(), line[at + 1..].trim());
            nested = value.is_empty();
            if !in_profile || value.is_empty() {
                continue;
            }
            match key.as_str() {
                "aws_access_key_id" => id = Some(value.to_owned()),
                "aws_secret_access_key" => secret = Some(value.to_owned()),
                // `aws_security_token` is the older name botocore still reads
                "aws_session_token" | "aws_security_token" => token = Some(value.to_owned()),
                _ => {}
            }
        }
        let missing = |key| CredentialsError::MissingKey { path: path.to_owned(), profile: profile.to_owned(), key };
        if !found {
            return Err(CredentialsError::NoProfile { path: path.to_owned(), profile: profile.to_owned() });
        }
        let id = id.ok_or_else(|| missing("aws_access_key_id"))?;
        let secret = secret.ok_or_else(|| missing("aws_secret_access_key"))?;
        Ok(Credentials::new(id, ApiKey::new(secret), token.map(ApiKey::new)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_environment_gives_keys_and_an_optional_token() {
        let vars = env(&[(ACCESS_KEY_ID_VAR, "AKIDEXAMPLE"), (SECRET_ACCESS_KEY_VAR, SECRET)]);
        let c = Credentials::from_vars(&vars).unwrap();
        assert_eq!(c, Credentials::new("AKIDEXAMPLE", ApiKey::new(SECRET), None));

        let vars = env(&[
            (ACCESS_KEY_ID_VAR, "ASIAEXAMPLE"),
            (SECRET_ACCESS_KEY_VAR, SECRET),
            (SESSION_TOKEN_VAR, "FwoGZXIvEXAMPLE"),
        ]);
        let c = Credentials::from_vars(&vars).unwrap();
        assert_eq!(c.session_token, Some(ApiKey::new("FwoGZXIvEXAMPLE")));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("ASIAEXAMPLE") && !shown.contains(SECRET) && !shown.contains("FwoGZXIvEXAMPLE"),
            "{shown}"
        );
    }

    #[test]
    fn a_half_set_environment_names_what_is_missing() {
        let e = Credentials::from_vars(&env(&[(ACCESS_KEY_ID_VAR, "AKIDEXAMPLE")])).unwrap_err();
        assert_eq!(e.to_string(), "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        let e = Credentials::from_vars(&env(&[(SECRET_ACCESS_KEY_VAR, SECRET)])).unwrap_err();
        assert_eq!(e.to_string(), "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
        assert!(!format!("{e} {e:?}").contains(SECRET));
        // and it is not papered over by the file
        let e = Credentials::load_with(&env(&[(SECRET_ACCESS_KEY_VAR, SECRET), ("HOME", "/nonexistent")]));
        assert!(matches!(e, Err(CredentialsError::HalfEnv { .. })), "{e:?}");
    }

    const FILE: &str = "\
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY

; another comment
[work]
AWS_Access_Key_Id=ASIAWORK
aws_secret_access_key=secret/with+chars==
aws_session_token = FwoGZXIvYXdzE#not-a-comment
s3 =
    max_concurrent_requests = 20

[  spaced  ]
aws_access_key_id = AKIDSPACED
[only-id]
aws_access_key_id = AKIDONLY
[work]
region = eu-west-1
";

    #[test]
    fn profiles_are_read_from_the_shared_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, FILE).unwrap();

        let c = Credentials::from_profile(&path, "default").unwrap();
        assert_eq!(c, Credentials::new("AKIDDEFAULT", ApiKey::new(SECRET), None));
        let c = Credentials::from_profile(&path, "work").unwrap();
        assert_eq!(c.access_key_id, "ASIAWORK");
        assert_eq!(c.secret_access_key.expose(), "secret/with+chars==");
        assert_eq!(c.session_token.as_ref().map(ApiKey::expose), Some("FwoGZXIvYXdzE#not-a-comment"));

        let e = Credentials::from_profile(&path, "spaced").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("profile [spaced] of the AWS credentials file {} has no aws_secret_access_key", path.display())
        );
        let e = Credentials::from_profile(&path, "nope").unwrap_err();
        assert_eq!(e.to_string(), format!("the AWS credentials file {} has no [nope] profile", path.display()));
    }

    #[test]
    fn the_file_and_profile_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("creds");
        std::fs::write(&file, FILE).unwrap();
        let file = file.to_str().unwrap();

        let vars = env(&[("AWS_SHARED_CREDENTIALS_FILE", file), ("AWS_PROFILE", "work")]);
        assert_eq!(Credentials::load_with(&vars).unwrap().access_key_id, "ASIAWORK");
        let vars = env(&[("AWS_SHARED_CREDENTIALS_FILE", file)]);
        assert_eq!(Credentials::load_with(&vars).unwrap().access_key_id, "AKIDDEFAULT");

        // ~/.aws/credentials
        std::fs::create_dir(dir.path().join(".aws")).unwrap();
        std::fs::write(dir.path().join(".aws/credentials"), FILE).unwrap();
        let vars = env(&[("HOME", dir.path().to_str().unwrap()), ("AWS_PROFILE", "work")]);
        assert_eq!(Credentials::from_shared_file_with(&vars).unwrap().access_key_id, "ASIAWORK");

        // the environment wins over the file
        let vars = env(&[
            (ACCESS_KEY_ID_VAR, "AKIDENV"),
            (SECRET_ACCESS_KEY_VAR, SECRET),
            ("AWS_SHARED_CREDENTIALS_FILE", file),
        ]);
        assert_eq!(Credentials::load_with(&vars).unwrap().access_key_id, "AKIDENV");
    }

    #[test]
    fn nothing_found_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let vars = env(&[("HOME", dir.path().to_str().unwrap())]);
        let e = Credentials::load_with(&vars).unwrap_err().to_string();
        assert!(e.starts_with("no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; and cannot read the AWS credentials file "), "{e}");
        assert!(e.contains(".aws/credentials"), "{e}");
        let e = Credentials::load_with(&env(&[])).unwrap_err().to_string();
        assert!(e.ends_with("neither AWS_SHARED_CREDENTIALS_FILE nor HOME is set"), "{e}");
    }

    #[test]
    fn a_bad_line_is_named_by_number_never_quoted() {
        let text = "[default]\naws_access_key_id = AKID\nwJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n";
        let e = Credentials::from_profile_text(text, Path::new("/x/credentials"), "default").unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("line 3") && !shown.contains(SECRET), "{shown}");
        let e = Credentials::from_profile_text("[]\n", Path::new("/x"), "default").unwrap_err();
        assert!(matches!(e, CredentialsError::Syntax { line: 1, .. }), "{e:?}");
    }
}
