//! The controller runtime: watches, caches, the work queue and leader election.
