//! The declared objects: `WorkerPool` and `Override` (`apiVersion: steward/v1`).
//!
//! [`load_paths`] and [`parse_str`] read them from files or text and report every problem at
//! once as a [`ValidationReport`]. [`parse_stored`] reads objects back from Consul KV, where
//! an override may have expired since it was written. [`validate_pool`] and
//! [`validate_override`] re-check objects from other sources, and [`to_yaml`] writes them
//! back.

mod document;
mod duration;
mod error;
mod load;
mod parse;
mod schema;
mod types;
mod validate;

pub use document::{DEFAULT_NAMESPACE, Document, LoadedDocument, to_yaml};
pub use duration::Duration;
pub use error::{ValidationError, ValidationReport};
pub use load::stored_size_problem;
pub use load::{STDIN_SOURCE, load_paths, load_paths_at, parse_stored, parse_str};
pub use parse::{
    CONSUL_MAX_BODY_BYTES, MAX_DEPTH, MAX_DOCUMENTS, MAX_INPUT_BYTES, MAX_NODES, MAX_STORED_BYTES,
};
pub use schema::{override_schema, schema_for_kind, workerpool_schema};
pub use types::*;
pub use validate::{
    MAX_HEADROOM, MAX_JOB_ID_LEN, MIN_INTERVAL, MIN_MEMORY_MB, dns_label_problem,
    validate_document, validate_override, validate_override_for_pool, validate_pool, validate_set,
};
