//! Nomad: typed models of its HTTP API and a client for the endpoints Steward uses.

pub mod model;

pub use model::*;
