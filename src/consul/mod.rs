//! Consul: a client for KV, transactions and sessions, blocking-query watches and the leader lock.

mod client;
mod config;
mod duration;
mod error;
pub mod keys;
mod lock;
mod watch;

pub use client::{
    ConsulClient, KvPair, QueryMeta, QueryOptions, SessionBehavior, SessionInfo, SessionRequest,
    TxnOp, WireKvPair, WriteMode,
};
pub use config::{ClientConfig, ConsulArgs, Token};
pub(crate) use duration::parse_go_duration;
pub use error::{Error, Result, TxnError};
pub use keys::Keys;
pub use lock::{LeaderLock, LeaderLockConfig};
pub use watch::{KvSnapshot, KvWatch, WatchConfig, WatchTarget};
