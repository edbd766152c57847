//! Emulators of the Consul and Nomad HTTP APIs, the traffic replay behind `steward dev`, and
//! the offline sizing simulator.

pub mod clock;
pub mod consul;
pub mod nomad;
pub mod simulate;
pub mod traces;
pub mod traffic;
