//! Consul: a client for KV, transactions and sessions, blocking-query watches and the leader lock.
