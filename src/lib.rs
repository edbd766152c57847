//! Steward: a reconciliation controller that keeps HashiCorp Nomad worker pools the way
//! operators declared them in Consul KV.
//!
//! Operators declare `WorkerPool` objects ([`spec`]); the controller ([`runtime`],
//! [`reconcile`]) watches them in Consul ([`consul`]) and the live cluster in Nomad
//! ([`nomad`]), sizes each pool ([`autoscale`]), rolls out new versions golden-first
//! ([`rollout`]) and writes status back to Consul. [`sim`] holds the API-faithful emulators of
//! Consul and Nomad and the offline sizing simulator.

#![forbid(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod autoscale;
pub mod cli;
pub mod consul;
pub mod nomad;
pub mod reconcile;
pub mod rollout;
pub mod runtime;
pub mod sim;
pub mod spec;
pub mod telemetry;
