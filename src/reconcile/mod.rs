//! Reconcile: turns one WorkerPool and the observed cluster into actions on Nomad and a status.
