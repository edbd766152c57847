//! Emulators of the Consul and Nomad HTTP APIs, and the offline sizing simulator.
pub mod nomad;
pub mod simulate;

pub mod clock;
pub mod traffic;
