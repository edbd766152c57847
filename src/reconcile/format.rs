//! Output of `steward status`: a kubectl-like table of pools, a detailed view of one pool,
//! and YAML or JSON. Pure functions of the stored statuses and the current time.

use std::fmt::Write as _;

use comfy_table::{Table, presets};
use jiff::Timestamp;

use super::status::Status;

/// `-o` of `steward status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Yaml,
    Json,
}

/// A status that could not be serialized.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Permanent: the status contains a value YAML cannot represent.
    #[error("failed to write the status of pool {pool} as YAML: {message}")]
    Yaml { pool: String, message: String },
}

/// Formats several pools: a table with one row per pool, or a YAML stream / JSON array.
pub fn format_list(
    statuses: &[Status],
    format: OutputFormat,
    now: Timestamp,
) -> Result<String, FormatError> {
    match format {
        OutputFormat::Table => Ok(table(statuses, now)),
        OutputFormat::Json => Ok(serde_json::to_string_pretty(statuses)
            .expect("a list of statuses always serializes to JSON")
            + "\n"),
        OutputFormat::Yaml => {
            let mut out = String::new();
            for status in statuses {
                out.push_str("---\n");
                out.push_str(&to_yaml(status)?);
            }
            Ok(out)
        }
    }
}

/// Formats one pool: the detailed view with zones, conditions and recent decisions, or its
/// YAML or JSON.
pub fn format_one(
    status: &Status,
    format: OutputFormat,
    now: Timestamp,
) -> Result<String, FormatError> {
    match format {
        OutputFormat::Table => Ok(detail(status, now)),
        OutputFormat::Json => Ok(status.to_json() + "\n"),
        OutputFormat::Yaml => to_yaml(status),
    }
}

fn to_yaml(status: &Status) -> Result<String, FormatError> {
    serde_saphyr::to_string(status).map_err(|error| FormatError::Yaml {
        pool: status.pool.clone(),
        message: error.to_string(),
    })
}

/// Formats the pool table: NAME, PHASE, DESIRED, RUNNING, HEALTHY, ZONES (`zone=running/desired`),
/// SOURCE, LAST DECISION and AGE (time since the status was last written).
pub fn table(statuses: &[Status], now: Timestamp) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header(vec![
        "NAME",
        "PHASE",
        "DESIRED",
        "RUNNING",
        "HEALTHY",
        "ZONES",
        "SOURCE",
        "LAST DECISION",
        "AGE",
    ]);

    for status in statuses {
        let zones: Vec<String> = status
            .zones
            .iter()
            .map(|zone| {
                let mark = if zone.available { "" } else { "!" };
                format!(
                    "{}{mark}={}/{}",
                    zone.name, zone.workers.running, zone.workers.desired
                )
            })
            .collect();
        let source = status.sizing.as_ref().map_or_else(
            || "-".to_owned(),
            |sizing| {
                // The autoscaler's own rule (raised to min, held, emergency) when it is not
                // the plain prediction, so the column agrees with the decision text.
                let rule = sizing
                    .autoscaler
                    .as_ref()
                    .and_then(|autoscaler| autoscaler.decision.as_ref())
                    .map(|decision| decision.source)
                    .filter(|rule| *rule != crate::autoscale::DecisionSource::Autoscaler);
                match (sizing.source, rule) {
                    (super::SizingSource::Autoscaler, Some(rule)) => {
                        format!("{:?} ({rule})", sizing.source)
                    }
                    _ => format!("{:?}", sizing.source),
                }
            },
        );
        let last = status
            .last_decision()
            .map_or_else(|| "-".to_owned(), |d| d.action.clone());

        table.add_row(vec![
            status.pool.clone(),
            status.phase.to_string(),
            status.workers.desired.to_string(),
            status.workers.running.to_string(),
            status.workers.healthy.to_string(),
            zones.join(" "),
            source,
            last,
            age(status.updated_at, now),
        ]);
    }

    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Formats the detailed view of one pool.
pub fn detail(status: &Status, now: Timestamp) -> String {
    let mut out = String::new();

    // `write!` into a String cannot fail, so its results are ignored.
    let _ = writeln!(out, "Name:                {}", status.pool);
    let _ = writeln!(out, "Phase:               {}", status.phase);
    let _ = writeln!(out, "Observed generation: {}", status.observed_generation);
    let _ = writeln!(
        out,
        "Workers:             {} desired, {} running, {} healthy",
        status.workers.desired, status.workers.running, status.workers.healthy
    );
    if let Some(sizing) = &status.sizing {
        let _ = writeln!(
            out,
            "Sizing:              {} from {:?}: {}",
            sizing.desired, sizing.source, sizing.reason
        );
        if let Some(rps) = sizing.predicted_rps {
            let _ = writeln!(out, "Predicted peak:      {rps:.1} requests/s");
        }
        if let Some(next) = sizing.next_cycle {
            let _ = writeln!(out, "Next cycle:          {next}");
        }
    }
    if let Some(report) = &status.r#override {
        let _ = writeln!(
            out,
            "Override:            {} workers, {:?} until {} ({}{})",
            report.workers,
            report.state,
            report.until,
            report.reason,
            report
                .by
                .as_deref()
                .map(|by| format!(", by {by}"))
                .unwrap_or_default()
        );
    }
    if let Some(error) = &status.last_error {
        let _ = writeln!(out, "Last error:          {error}");
    }
    let _ = writeln!(
        out,
        "Written by:          {} {} ago",
        status.written_by,
        age(status.updated_at, now)
    );

    out.push_str("\nZones:\n");
    for zone in &status.zones {
        let _ = writeln!(
            out,
            "  {:<12} desired={} running={} healthy={}{}",
            zone.name,
            zone.workers.desired,
            zone.workers.running,
            zone.workers.healthy,
            if zone.available {
                ""
            } else {
                " (no eligible node)"
            }
        );
    }

    out.push_str("\nConditions:\n");
    // Columns as wide as their longest entry, so every row lines up.
    let type_width = status
        .conditions
        .iter()
        .map(|condition| condition.r#type.len())
        .max()
        .unwrap_or(0);
    let reason_width = status
        .conditions
        .iter()
        .map(|condition| condition.reason.len())
        .max()
        .unwrap_or(0);
    for condition in &status.conditions {
        let _ = writeln!(
            out,
            "  {:<type_width$} {:<7} {:<reason_width$} {:>4} ago  {}",
            condition.r#type,
            format!("{:?}", condition.status),
            condition.reason,
            age(condition.last_transition_time, now),
            condition.message
        );
    }

    out.push_str("\nRecent decisions (newest first):\n");
    for decision in status.decisions.iter().rev() {
        let _ = writeln!(
            out,
            "  {} ago  {}: {}",
            age(decision.time, now),
            decision.action,
            decision.reason
        );
    }
    out
}

/// Formats the time from `then` to `now` as kubectl does: `45s`, `12m`, `5h`, `3d`.
pub fn age(then: Timestamp, now: Timestamp) -> String {
    let seconds = (now.as_second() - then.as_second()).max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
