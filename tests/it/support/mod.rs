//! Helpers that start real servers for the integration tests, on loopback ports with
//! temporary data directories, and stop them when dropped.

pub mod cluster_reads;
pub mod emulated_time;
pub mod face_pool;
pub mod process;
pub mod prometheus;
pub mod rabbitmq;
