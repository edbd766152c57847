//! Nomad models and client: fixture round trips, request shapes against an in-test server.

mod models;
