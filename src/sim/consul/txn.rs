//! `PUT /v1/txn`: KV operations applied all together or not at all.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::http::{MAX_VALUE_SIZE, Shared, decode_base64, entry_json, json_with_index, text};
use super::store::{Entry, Store, WriteMode};

#[derive(Debug, Deserialize)]
struct TxnOp {
    #[serde(rename = "KV")]
    kv: Option<KvOp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvOp {
    verb: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    index: u64,
    #[serde(default)]
    session: String,
}

/// Runs one operation on `store`. Returns the result entries, each with a flag that is true
/// when the value is shown, or the `What` text of the failure.
fn apply(
    store: &mut Store,
    op: &KvOp,
    index: u64,
    now: std::time::Instant,
) -> Result<Vec<(Entry, bool)>, String> {
    let value = match &op.value {
        Some(encoded) => decode_base64(encoded)
            .ok_or_else(|| format!("invalid base64 value for key {:?}", op.key))?,
        None => Vec::new(),
    };
    let key = op.key.as_str();
    let current = || store.data.kv.get(key).cloned();
    let written = |store: &Store| {
        store
            .data
            .kv
            .get(key)
            .cloned()
            .map(|e| vec![(e, false)])
            .unwrap_or_default()
    };
    match op.verb.as_str() {
        "set" => {
            store
                .set(key, &value, op.flags, &WriteMode::Plain, index, now)
                .map_err(|e| e.to_string())?;
            Ok(written(store))
        }
        "cas" => {
            if store
                .set(key, &value, op.flags, &WriteMode::Cas(op.index), index, now)
                .map_err(|e| e.to_string())?
            {
                Ok(written(store))
            } else {
                Err(format!("failed to set key {key:?}, index is stale"))
            }
        }
        "lock" => {
            if store
                .set(
                    key,
                    &value,
                    op.flags,
                    &WriteMode::Acquire(op.session.clone()),
                    index,
                    now,
                )
                .map_err(|e| e.to_string())?
            {
                Ok(written(store))
            } else {
                Err(format!("failed to lock key {key:?}, lock is already held"))
            }
        }
        "unlock" => {
            if store
                .set(
                    key,
                    &value,
                    op.flags,
                    &WriteMode::Release(op.session.clone()),
                    index,
                    now,
                )
                .map_err(|e| e.to_string())?
            {
                Ok(written(store))
            } else {
                Err(format!(
                    "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                ))
            }
        }
        "get" => match current() {
            Some(entry) => Ok(vec![(entry, true)]),
            None => Err(format!("key {key:?} doesn't exist")),
        },
        "get-or-empty" => Ok(current().map(|e| vec![(e, true)]).unwrap_or_default()),
        "get-tree" => Ok(store
            .list(key)
            .0
            .into_iter()
            .map(|e| (e.clone(), true))
            .collect()),
        "check-index" => match current() {
            Some(entry) if entry.modify_index == op.index => Ok(vec![(entry, false)]),
            Some(entry) => Err(format!(
                "failed index check for key {key:?}, current modify index {} != {}",
                entry.modify_index, op.index
            )),
            None => Err(format!(
                "failed index check for key {key:?}, key doesn't exist"
            )),
        },
        "check-session" => match current() {
            Some(entry) if entry.session.as_deref() == Some(op.session.as_str()) => {
                Ok(vec![(entry, false)])
            }
            Some(entry) => Err(format!(
                "failed session check for key {key:?}, current session {:?} != {:?}",
                entry.session.unwrap_or_default(),
                op.session
            )),
            None => Err(format!(
                "failed session check for key {key:?}, key doesn't exist"
            )),
        },
        "check-not-exists" => match current() {
            Some(_) => Err(format!("failed to check for non-existence of key {key:?}")),
            None => Ok(Vec::new()),
        },
        "delete" => {
            store.delete(key, false, None, index);
            Ok(Vec::new())
        }
        "delete-tree" => {
            store.delete(key, true, None, index);
            Ok(Vec::new())
        }
        "delete-cas" => {
            if store.delete(key, false, Some(op.index), index) {
                Ok(Vec::new())
            } else {
                Err(format!("failed to delete key {key:?}, index is stale"))
            }
        }
        other => Err(format!("unknown KV verb {other:?}")),
    }
}

pub(crate) async fn txn(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if body.len() > MAX_VALUE_SIZE {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes",
                body.len()
            ),
        );
    }
    let ops: Vec<TxnOp> = match serde_json::from_slice(&body) {
        Ok(ops) => ops,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Failed to parse body: {e}"),
            );
        }
    };
    let max = shared.max_txn_ops();
    if ops.len() > max {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Transaction contains too many operations ({} > {max})",
                ops.len()
            ),
        );
    }

    let outcome = shared.transact(|store, index, now| {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            // NOTE: only KV operations are emulated; Node, Service and Check ops are rejected.
            let Some(kv) = &op.kv else {
                errors.push(json!({"OpIndex": op_index, "What": "the emulator supports only KV operations"}));
                continue;
            };
            match apply(store, kv, index, now) {
                Ok(entries) => results.extend(entries.into_iter().map(|(e, with_value)| json!({"KV": entry_json(&e, with_value)}))),
                Err(what) => errors.push(json!({"OpIndex": op_index, "What": what})),
            }
        }
        if errors.is_empty() { Ok(results) } else { Err(errors) }
    });

    match outcome {
        Ok((index, results)) => json_with_index(
            StatusCode::OK,
            index.max(1),
            &json!({"Results": results, "Errors": null}),
        ),
        // A rolled-back transaction reads nothing, so it carries no index header.
        Err(errors) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"Results": null, "Errors": errors}).to_string(),
        )
            .into_response(),
    }
}
