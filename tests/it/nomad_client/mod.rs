//! Nomad models and client: fixture round trips, request shapes against an in-test server.

mod client;
mod e2e;
mod events;
mod models;
