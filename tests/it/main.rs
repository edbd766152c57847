//! Integration tests: one binary, one module per area, so the crate is linked once.

mod autoscale;
mod consul;
mod consul_cli;
mod controller;
mod controller_autoscale;
mod controller_rollout;
mod dev_cli;
mod examples;
mod nomad_client;
mod nomad_emu;
mod reconcile;
mod rollout_analysis;
mod rollout_cli;
mod rollout_e2e;
mod rollout_failover;
mod runtime;
mod spec;
mod support;
mod traffic;
