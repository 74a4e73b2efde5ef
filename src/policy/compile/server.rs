//! `[server]`: the gateway's limits checked, its key file and TLS files read.

use std::hash::Hasher;

use crate::duration::DurationStr;
use toml::Spanned;

use crate::policy::ServerSettings;
use crate::policy::diagnostic::Collector;
use crate::policy::schema::ServerSpec;

/// `[server]`: limits checked, the key file and TLS files read.
pub(super) fn compile_server(c: &mut Collector<'_>, spec: ServerSpec, routes: &[&str]) -> ServerSettings {
    let duration = |c: &mut Collector<'_>, key: &str, d: Option<Spanned<DurationStr>>| {
        let d = d?;
        if d.get_ref().get().is_zero() {
            c.error(&d.span(), format!("server.{key}"), "must be longer than zero");
        }
        Some(d.into_inner().get())
    };
    let at_least = |c: &mut Collector<'_>, key: &str, v: Option<Spanned<u64>>, min: u64| {
        let v = v?;
        if *v.get_ref() < min {
            c.error(&v.span(), format!("server.{key}"), format!("must be at least {min}"));
        }
        Some(v.into_inner())
    };
    let mut files = std::collections::hash_map::DefaultHasher::new();
    let (keys, keys_file) =
        crate::policy::client_keys::load(c, spec.api_keys_env.as_deref(), spec.keys_file.as_ref(), routes, &mut files);
    let tls = spec.tls.as_ref().and_then(|t| crate::policy::tls::load(c, t, &mut files));
    ServerSettings {
        header_read_timeout: duration(c, "header_read_timeout", spec.header_read_timeout),
        body_read_timeout: duration(c, "body_read_timeout", spec.body_read_timeout),
        keepalive_timeout: duration(c, "keepalive_timeout", spec.keepalive_timeout),
        write_timeout: duration(c, "write_timeout", spec.write_timeout),
        max_connections: at_least(c, "max_connections", spec.max_connections, 1),
        // no real request line and headers fit in less
        max_header_bytes: at_least(c, "max_header_bytes", spec.max_header_bytes, 1024),
        max_in_flight_per_key: at_least(c, "max_in_flight_per_key", spec.max_in_flight_per_key, 1),
        api_keys_env: spec.api_keys_env,
        listen: spec.listen,
        admin_listen: spec.admin_listen,
        max_body: spec.max_body,
        max_model_bytes: spec.max_model_bytes,
        max_messages: spec.max_messages,
        max_tools: spec.max_tools,
        keys_file,
        tls,
        client_keys: std::sync::Arc::new(keys),
        files_hash: files.finish(),
    }
}
