//! The emulated Consul state: KV entries, tombstones and sessions, with Consul's index rules.
//!
//! Every mutation takes the next Raft-style index (`index + 1`) and commits it only when
//! something changed, so a write with an unchanged value, flags and session moves no index
//! (Consul 1.6 and later behave the same way).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One KV entry as Consul stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// Shared, so copying the store for a transaction does not copy values.
    #[serde(with = "shared_bytes")]
    pub(crate) value: bytes::Bytes,
    pub(crate) flags: u64,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
    pub(crate) lock_index: u64,
    pub(crate) session: Option<String>,
}

/// The fate of a session's locks when the session is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Behavior {
    Release,
    Delete,
}

/// One session as Consul stores it. `lock_delay_ns` is in nanoseconds, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) node: String,
    pub(crate) lock_delay_ns: u64,
    pub(crate) behavior: Behavior,
    /// The TTL as the client wrote it (`"30s"`), or empty for none.
    pub(crate) ttl: String,
    pub(crate) ttl_duration: Option<Duration>,
    pub(crate) node_checks: Vec<String>,
    pub(crate) service_checks: Option<Vec<String>>,
    pub(crate) create_index: u64,
    pub(crate) modify_index: u64,
}

/// The condition a KV write must meet to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteMode {
    Plain,
    /// Write only when the entry's ModifyIndex equals this (0: only when the key is absent).
    Cas(u64),
    Acquire(String),
    Release(String),
}

/// A failed store operation, with the plain-text message Consul sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// The session named in `acquire`, `release` or a txn op does not exist (Consul: 500).
    InvalidSession(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidSession(id) => write!(f, "invalid session \"{id}\""),
        }
    }
}

/// The persisted state. Lock delays and TTL deadlines are transient and live in [`Store`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(crate) index: u64,
    pub(crate) kv: BTreeMap<String, Entry>,
    /// Index of the delete that removed each key, until the tombstone is reaped.
    pub(crate) tombstones: BTreeMap<String, u64>,
    pub(crate) sessions: BTreeMap<String, Session>,
}

/// The state plus its transient timers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    pub(crate) data: Data,
    /// Keys that cannot be acquired until the instant, after their holder was invalidated.
    pub(crate) lock_delays: HashMap<String, Instant>,
    /// When each session with a TTL expires unless renewed.
    pub(crate) session_deadlines: HashMap<String, Instant>,
    /// KV keys written or deleted since the last [`Store::take_changed_keys`], so that a
    /// commit wakes only the blocked queries under them.
    changed_keys: Vec<String>,
}

impl Store {
    /// Builds a store from persisted data. TTL timers restart from `now`, as a new Consul
    /// leader restarts them.
    pub(crate) fn from_data(data: Data, now: Instant, ttl_multiplier: u32) -> Self {
        let mut store = Self {
            data,
            ..Self::default()
        };
        let sessions: Vec<(String, Option<Duration>)> = store
            .data
            .sessions
            .values()
            .map(|s| (s.id.clone(), s.ttl_duration))
            .collect();
        for (id, ttl) in sessions {
            if let Some(ttl) = ttl {
                store
                    .session_deadlines
                    .insert(id, now + ttl * ttl_multiplier);
            }
        }
        store
    }

    /// Returns the highest index of the KV and tombstone tables.
    pub(crate) fn kv_table_index(&self) -> u64 {
        let kv = self.data.kv.values().map(|e| e.modify_index).max();
        let tomb = self.data.tombstones.values().copied().max();
        kv.max(tomb).unwrap_or(0)
    }

    /// Index of the session table.
    pub(crate) fn session_table_index(&self) -> u64 {
        self.data
            .sessions
            .values()
            .map(|s| s.modify_index)
            .max()
            .unwrap_or(0)
            .max(self.data.index)
    }

    /// Entries whose key starts with `prefix`, and the list index (see [`Store::list_index`]).
    pub(crate) fn list(&self, prefix: &str) -> (Vec<&Entry>, u64) {
        let entries: Vec<&Entry> = self
            .data
            .kv
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
            .collect();
        (entries, self.list_index(prefix))
    }

    /// Returns the list index of `prefix`: the highest ModifyIndex among the entries and the
    /// tombstones under it, or the table index when both are empty.
    pub(crate) fn list_index(&self, prefix: &str) -> u64 {
        self.prefix_index(prefix)
            .unwrap_or_else(|| self.kv_table_index())
    }

    /// Returns the highest ModifyIndex among the entries and the tombstones under `prefix`,
    /// or `None` when there are neither. Reads only the keys under the prefix.
    pub(crate) fn prefix_index(&self, prefix: &str) -> Option<u64> {
        let range = (Bound::Included(prefix), Bound::Unbounded);
        let max_entry = self
            .data
            .kv
            .range::<str, _>(range)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.modify_index)
            .max();
        let max_tomb = self
            .data
            .tombstones
            .range::<str, _>(range)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, i)| *i)
            .max();
        max_entry.max(max_tomb)
    }

    /// Writes `key`. Returns whether the write happened (`false` for a failed CAS, a held
    /// lock or a lock delay).
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: &[u8],
        flags: u64,
        mode: &WriteMode,
        index: u64,
        now: Instant,
    ) -> Result<bool, StoreError> {
        let existing = self.data.kv.get(key).cloned();
        let mut next = match &existing {
            Some(e) => e.clone(),
            None => Entry {
                key: key.to_string(),
                value: bytes::Bytes::new(),
                flags: 0,
                create_index: index,
                modify_index: index,
                lock_index: 0,
                session: None,
            },
        };
        next.value = bytes::Bytes::copy_from_slice(value);
        next.flags = flags;

        match mode {
            WriteMode::Plain => {}
            WriteMode::Cas(expected) => {
                let current = existing.as_ref().map_or(0, |e| e.modify_index);
                if *expected != current {
                    return Ok(false);
                }
            }
            WriteMode::Acquire(session) => {
                if !self.data.sessions.contains_key(session) {
                    return Err(StoreError::InvalidSession(session.clone()));
                }
                if let Some(until) = self.lock_delays.get(key)
                    && now < *until
                {
                    return Ok(false);
                }
                match existing.as_ref().and_then(|e| e.session.as_ref()) {
                    Some(holder) if holder != session => return Ok(false),
                    Some(_) => {}
                    None => {
                        next.session = Some(session.clone());
                        next.lock_index += 1;
                    }
                }
            }
            WriteMode::Release(session) => {
                if !self.data.sessions.contains_key(session) {
                    return Err(StoreError::InvalidSession(session.clone()));
                }
                match existing.as_ref().and_then(|e| e.session.as_ref()) {
                    Some(holder) if holder == session => next.session = None,
                    _ => return Ok(false),
                }
            }
        }

        if existing.as_ref() == Some(&next) {
            return Ok(true);
        }
        next.modify_index = index;
        self.data.tombstones.remove(key);
        self.data.kv.insert(key.to_string(), next);
        self.changed_keys.push(key.to_string());
        self.data.index = index;
        Ok(true)
    }

    /// Deletes `key` (or every key under it with `recurse`). With `cas`, deletes only when
    /// the ModifyIndex matches, and returns `true` also when the key did not exist.
    pub(crate) fn delete(
        &mut self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
        index: u64,
    ) -> bool {
        if let Some(expected) = cas {
            match self.data.kv.get(key) {
                None => return true,
                Some(e) if e.modify_index != expected => return false,
                Some(_) => {}
            }
        }
        let doomed: Vec<String> = if recurse {
            self.data
                .kv
                .range(key.to_string()..)
                .take_while(|(k, _)| k.starts_with(key))
                .map(|(k, _)| k.clone())
                .collect()
        } else if self.data.kv.contains_key(key) {
            vec![key.to_string()]
        } else {
            Vec::new()
        };
        for k in &doomed {
            self.data.kv.remove(k);
            self.data.tombstones.insert(k.clone(), index);
        }
        if !doomed.is_empty() {
            self.data.index = index;
        }
        self.changed_keys.extend(doomed);
        true
    }

    /// Returns and clears the KV keys written or deleted since the last call.
    pub(crate) fn take_changed_keys(&mut self) -> Vec<String> {
        std::mem::take(&mut self.changed_keys)
    }

    /// Removes every tombstone, as Consul's reaper does after its grace period. List
    /// indexes under a prefix whose newest event was a delete then move backwards.
    pub(crate) fn reap_tombstones(&mut self) {
        self.data.tombstones.clear();
    }

    /// Invalidates `id`: releases or deletes its locks and starts their lock delay.
    /// Returns whether the session existed.
    pub(crate) fn invalidate_session(&mut self, id: &str, index: u64, now: Instant) -> bool {
        let Some(session) = self.data.sessions.remove(id) else {
            return false;
        };
        self.session_deadlines.remove(id);
        let held: Vec<String> = self
            .data
            .kv
            .values()
            .filter(|e| e.session.as_deref() == Some(id))
            .map(|e| e.key.clone())
            .collect();
        for key in held {
            match session.behavior {
                Behavior::Release => {
                    if let Some(entry) = self.data.kv.get_mut(&key) {
                        entry.session = None;
                        entry.modify_index = index;
                    }
                }
                Behavior::Delete => {
                    self.data.kv.remove(&key);
                    self.data.tombstones.insert(key.clone(), index);
                }
            }
            self.changed_keys.push(key.clone());
            if session.lock_delay_ns > 0 {
                let delay = Duration::from_nanos(session.lock_delay_ns);
                self.lock_delays.insert(key, now + delay);
            }
        }
        self.data.index = index;
        true
    }

    /// Invalidates every session whose TTL deadline has passed. Returns whether any expired.
    pub(crate) fn expire_sessions(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .session_deadlines
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            let index = self.data.index + 1;
            tracing::debug!(session = %id, "session ttl expired");
            self.invalidate_session(id, index, now);
        }
        !expired.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_write_keeps_index() {
        let now = Instant::now();
        let mut store = Store::default();
        assert!(store.set("a", b"x", 0, &WriteMode::Plain, 1, now).unwrap());
        assert!(store.set("a", b"x", 0, &WriteMode::Plain, 2, now).unwrap());
        assert_eq!(store.data.kv["a"].modify_index, 1);
        assert_eq!(store.data.index, 1);
    }

    #[test]
    fn list_index_counts_tombstones() {
        let now = Instant::now();
        let mut store = Store::default();
        store
            .set("p/a", b"1", 0, &WriteMode::Plain, 1, now)
            .unwrap();
        store
            .set("p/b", b"2", 0, &WriteMode::Plain, 2, now)
            .unwrap();
        store.delete("p/b", false, None, 3);
        assert_eq!(store.list("p/").1, 3);
        store.reap_tombstones();
        assert_eq!(store.list("p/").1, 1);
    }

    #[test]
    fn delete_cas_zero_keeps_existing_key() {
        let now = Instant::now();
        let mut store = Store::default();
        store.set("a", b"1", 0, &WriteMode::Plain, 1, now).unwrap();
        assert!(!store.delete("a", false, Some(0), 2));
        assert!(store.data.kv.contains_key("a"));
        assert!(store.delete("missing", false, Some(5), 3));
    }
}

/// Serializes shared bytes as a plain byte list, the form snapshots have always used.
mod shared_bytes {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &bytes::Bytes,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<bytes::Bytes, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(bytes::Bytes::from)
    }
}
