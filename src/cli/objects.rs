//! Reading and writing Steward's objects in Consul KV for the command line.

use std::collections::BTreeMap;

use super::CliError;
use crate::consul::{ConsulArgs, ConsulClient, Error as ConsulError, Keys, KvPair, QueryOptions};
use crate::sim::clock::ClockAnchor;
use crate::spec::{self, Document, Override, WorkerPool};

/// The clock the CLI compares overrides and ages with: the sped-up clock of a `steward dev`
/// that runs on this Consul (it stores its clock at [`Keys::dev_clock`]), otherwise the wall
/// clock. Read once per command, because a dev run's clock never changes its anchor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CliClock(Option<ClockAnchor>);

impl CliClock {
    /// Reads the dev clock key. A key that cannot be read or parsed counts as absent.
    pub(crate) async fn read(client: &ConsulClient, keys: &Keys) -> Self {
        let key = keys.dev_clock();
        let bytes = match client.kv_get_raw(&key).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Self(None),
            Err(error) => {
                tracing::debug!(%key, %error, "dev clock not read; using the wall clock");
                return Self(None);
            }
        };
        match serde_json::from_slice::<ClockAnchor>(&bytes) {
            Ok(anchor) => Self(Some(anchor)),
            Err(error) => {
                tracing::debug!(%key, %error, "dev clock does not parse; using the wall clock");
                Self(None)
            }
        }
    }

    /// Returns whether this is the sped-up clock of a `steward dev`, not the wall clock.
    pub(crate) fn is_dev(&self) -> bool {
        self.0.is_some()
    }

    /// Returns the current time on this clock.
    pub(crate) fn now(&self) -> jiff::Timestamp {
        match &self.0 {
            Some(anchor) => anchor.now(),
            None => jiff::Timestamp::now(),
        }
    }
}

/// Returns the login name for the `by` of a request: `$USER`, else `$LOGNAME`, when set and
/// not empty.
pub(crate) fn login_name() -> Option<String> {
    ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.is_empty())
}

/// Builds the client and key layout; invalid settings are bad usage (exit status 2).
pub(crate) fn connect(args: &ConsulArgs) -> Result<(ConsulClient, Keys), CliError> {
    let client = args.client().map_err(CliError::usage)?;
    let keys = args.keys().map_err(|error| {
        CliError::usage(anyhow::anyhow!(
            "invalid --prefix (or STEWARD_PREFIX) {:?}: {error}; use a prefix such as \
             `steward/`",
            args.prefix
        ))
    })?;
    Ok((client, keys))
}

/// Adds what to check when Consul could not be reached, such as a refused connection.
pub(crate) fn explain_consul_error(error: ConsulError, action: String) -> anyhow::Error {
    if matches!(error, ConsulError::Unavailable { .. }) {
        return anyhow::anyhow!(
            "{action}: {error}; check CONSUL_HTTP_ADDR (or --consul-addr) and that Consul, or \
             `steward dev consul`, is running there"
        );
    }
    anyhow::Error::new(error).context(action)
}

/// An object read back from a key: its ModifyIndex, the stored text, and the parsed object or
/// why it did not parse.
#[derive(Debug, Clone)]
pub(crate) struct Stored<T> {
    pub(crate) key: String,
    pub(crate) modify_index: u64,
    pub(crate) text: Vec<u8>,
    pub(crate) object: Result<T, String>,
}

fn parse_stored_document(pair: &KvPair) -> Result<Document, String> {
    let text =
        std::str::from_utf8(&pair.value).map_err(|_| "the value is not UTF-8 text".to_string())?;
    let mut documents = spec::parse_stored(text, &pair.key).map_err(|report| report.to_string())?;
    match documents.len() {
        1 => Ok(documents.remove(0).document),
        n => Err(format!("expected one object, found {n}")),
    }
}

pub(crate) fn stored_pool(pair: &KvPair) -> Stored<WorkerPool> {
    let object = parse_stored_document(pair).and_then(|doc| match doc {
        Document::WorkerPool(pool) => Ok(pool),
        other => Err(format!("expected a WorkerPool, found {}", other.kind())),
    });
    Stored {
        key: pair.key.clone(),
        modify_index: pair.modify_index,
        text: pair.value.clone(),
        object,
    }
}

pub(crate) fn stored_override(pair: &KvPair) -> Stored<Override> {
    let object = parse_stored_document(pair).and_then(|doc| match doc {
        Document::Override(item) => Ok(item),
        other => Err(format!("expected an Override, found {}", other.kind())),
    });
    Stored {
        key: pair.key.clone(),
        modify_index: pair.modify_index,
        text: pair.value.clone(),
        object,
    }
}

/// Reads every pool, keyed by name.
pub(crate) async fn read_pools(
    client: &ConsulClient,
    keys: &Keys,
) -> anyhow::Result<BTreeMap<String, Stored<WorkerPool>>> {
    let prefix = keys.pools_prefix();
    let (pairs, _) = client
        .kv_list(&prefix, &QueryOptions::default())
        .await
        .map_err(|e| explain_consul_error(e, format!("failed to list pools under {prefix}")))?;
    Ok(pairs
        .iter()
        .filter_map(|pair| {
            keys.pool_name(&pair.key)
                .map(|name| (name.to_string(), stored_pool(pair)))
        })
        .collect())
}

/// Reads every override, keyed by pool name.
pub(crate) async fn read_overrides(
    client: &ConsulClient,
    keys: &Keys,
) -> anyhow::Result<BTreeMap<String, Stored<Override>>> {
    let prefix = keys.overrides_prefix();
    let (pairs, _) = client
        .kv_list(&prefix, &QueryOptions::default())
        .await
        .map_err(|e| explain_consul_error(e, format!("failed to list overrides under {prefix}")))?;
    Ok(pairs
        .iter()
        .filter_map(|pair| {
            keys.override_name(&pair.key)
                .map(|name| (name.to_string(), stored_override(pair)))
        })
        .collect())
}

/// Reads one pool; `None` when its key does not exist.
pub(crate) async fn read_pool(
    client: &ConsulClient,
    keys: &Keys,
    name: &str,
) -> anyhow::Result<Option<Stored<WorkerPool>>> {
    let key = keys.pool(name);
    let pair = client
        .kv_get(&key)
        .await
        .map_err(|e| explain_consul_error(e, format!("failed to read {key}")))?;
    Ok(pair.as_ref().map(stored_pool))
}

/// Reads one override; `None` when its key does not exist.
pub(crate) async fn read_override(
    client: &ConsulClient,
    keys: &Keys,
    name: &str,
) -> anyhow::Result<Option<Stored<Override>>> {
    let key = keys.override_(name);
    let pair = client
        .kv_get(&key)
        .await
        .map_err(|e| explain_consul_error(e, format!("failed to read {key}")))?;
    Ok(pair.as_ref().map(stored_override))
}

/// Checks that `name` is a DNS label before it becomes part of a key.
pub(crate) fn check_name(name: &str) -> Result<(), CliError> {
    match spec::dns_label_problem(name) {
        Some(problem) => Err(CliError::usage(anyhow::anyhow!(
            "invalid pool name {name:?}: {problem}"
        ))),
        None => Ok(()),
    }
}
