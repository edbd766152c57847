//! Steward's key layout in Consul KV and the rules its keys follow.
//!
//! Under the prefix (`steward/` by default): `pools/<name>` holds a WorkerPool as YAML,
//! `overrides/<name>` an Override as YAML, `status/<name>` the status as JSON, and `leader`
//! the leader lock.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::Error;

/// Characters sent as they are in a key's path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Checks that `key` keeps to `[A-Za-z0-9._/-]` with no leading `/`, no `//` and no `.` or
/// `..` segment. Consul 1.21.5 rejected other characters, and current versions reject
/// traversal segments. A trailing `/` is allowed for prefixes.
pub fn validate_key(key: &str) -> Result<(), Error> {
    let invalid = |message: &str| Error::InvalidKey {
        key: key.to_string(),
        message: message.to_string(),
    };
    if key.is_empty() {
        return Err(invalid("the key is empty"));
    }
    if let Some(bad) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-')))
    {
        return Err(invalid(&format!(
            "character {bad:?} is not allowed; use only A-Z, a-z, 0-9, '.', '_', '/' and '-'"
        )));
    }
    if key.starts_with('/') {
        return Err(invalid("a key must not start with '/'"));
    }
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    if trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(invalid(
            "a key must not contain empty, '.' or '..' segments",
        ));
    }
    Ok(())
}

/// Percent-encodes each segment of `key` for the URL path, keeping the `/` separators.
pub fn encode_key_path(key: &str) -> String {
    key.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// The keys of one Steward installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Builds the layout under `prefix`, adding a trailing `/` when it is missing.
    pub fn new(prefix: &str) -> Result<Self, Error> {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        validate_key(&prefix)?;
        Ok(Self { prefix })
    }

    /// Returns the prefix, ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>pools/`
    pub fn pools_prefix(&self) -> String {
        format!("{}pools/", self.prefix)
    }

    /// `<prefix>overrides/`
    pub fn overrides_prefix(&self) -> String {
        format!("{}overrides/", self.prefix)
    }

    /// `<prefix>status/`
    pub fn status_prefix(&self) -> String {
        format!("{}status/", self.prefix)
    }

    /// `<prefix>pools/<name>`
    pub fn pool(&self, name: &str) -> String {
        format!("{}{name}", self.pools_prefix())
    }

    /// `<prefix>overrides/<name>`
    pub fn override_(&self, name: &str) -> String {
        format!("{}{name}", self.overrides_prefix())
    }

    /// `<prefix>status/<name>`
    pub fn status(&self, name: &str) -> String {
        format!("{}{name}", self.status_prefix())
    }

    /// `<prefix>leader`
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// `<prefix>dev/clock`: the simulated clock of a running `steward dev`, so that the CLI
    /// reads the time its controller reads. Absent outside `steward dev`.
    pub fn dev_clock(&self) -> String {
        format!("{}dev/clock", self.prefix)
    }

    /// Returns the pool name in a key under [`Keys::pools_prefix`], if `key` is one.
    pub fn pool_name<'k>(&self, key: &'k str) -> Option<&'k str> {
        Self::name_under(key, &self.pools_prefix())
    }

    /// Returns the pool name in a key under [`Keys::overrides_prefix`], if `key` is one.
    pub fn override_name<'k>(&self, key: &'k str) -> Option<&'k str> {
        Self::name_under(key, &self.overrides_prefix())
    }

    fn name_under<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
        key.strip_prefix(prefix)
            .filter(|name| !name.is_empty() && !name.contains('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_under_default_prefix() {
        let keys = Keys::new("steward").unwrap();
        assert_eq!(keys.pool("web"), "steward/pools/web");
        assert_eq!(keys.override_("web"), "steward/overrides/web");
        assert_eq!(keys.status("web"), "steward/status/web");
        assert_eq!(keys.leader(), "steward/leader");
        assert_eq!(keys.pool_name("steward/pools/web"), Some("web"));
        assert_eq!(keys.pool_name("steward/pools/a/b"), None);
    }

    #[test]
    fn key_validation_rejects_unsafe_names() {
        for bad in [
            "",
            "/a",
            "a//b",
            "a/../b",
            "a b",
            "acme - host",
            "a%2Fb",
            "./a",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} must be rejected");
        }
        for good in ["steward/", "steward/pools/web-1", "a.b_c/d"] {
            assert!(validate_key(good).is_ok(), "{good:?} must be accepted");
        }
    }

    #[test]
    fn key_path_encoding_keeps_separators() {
        assert_eq!(encode_key_path("a/b c/d"), "a/b%20c/d");
        assert_eq!(encode_key_path("x%y"), "x%25y");
    }
}
