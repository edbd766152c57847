//! Traffic traces built into the binary, so commands that replay them run from any directory.

/// The NASA Kennedy Space Center web server trace of July 1995, one `timestamp,requests` row
/// per minute.
pub const NASA_TRACE: &str = include_str!("../../traces/nasa_ksc_jul1995_1min.csv");

/// The name under which [`NASA_TRACE`] appears in reports and errors.
pub const NASA_TRACE_NAME: &str = "built-in NASA KSC July 1995 trace";
