//! Predictive autoscaling: traffic predictors, metric sources and the sizing rules.
