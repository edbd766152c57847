//! Integration tests: one binary, one module per area, so the crate is linked once.
mod nomad_client;
mod reconcile;
mod runtime;
