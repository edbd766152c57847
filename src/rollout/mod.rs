//! Golden-first rollouts of a new version: prefetch, golden worker, soak, roll and rollback.
