//! Emulators of the Consul and Nomad HTTP APIs, and the offline sizing simulator.
pub mod consul;
pub mod nomad;
