//! Integration tests: one binary, one module per area, so the crate is linked once.
mod consul;
mod consul_cli;
mod spec;
mod nomad_client;
mod controller;
mod reconcile;
mod runtime;
mod nomad_emu;
