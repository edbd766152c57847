use steward::reconcile::format::{OutputFormat, age, format_list, format_one};
use steward::reconcile::status::{MAX_DECISIONS, condition_type};
use steward::reconcile::{ConditionStatus, Phase, Status, plan};

use super::{FakeCluster, example_pool, override_of, time};

fn converged_status(now: &str) -> (FakeCluster, Status) {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let created = plan(&pool, None, &cluster.observed, time(now));
    cluster.apply(&created);
    cluster.settle();
    let first = Status::next(
        "face-match",
        None,
        &created.status,
        5,
        "steward-0",
        time(now),
    );
    let converged = plan(&pool, None, &cluster.observed, time(now));
    let status = Status::next(
        "face-match",
        Some(&first),
        &converged.status,
        5,
        "steward-0",
        time(now),
    );
    (cluster, status)
}

#[test]
fn status_serializes_camel_case() {
    let (_, status) = converged_status("2026-12-04T20:00:00Z");
    let json: serde_json::Value = serde_json::from_str(&status.to_json()).expect("valid JSON");

    assert_eq!(json["observedGeneration"], 5);
    assert_eq!(json["phase"], "Ready");
    assert_eq!(json["workers"]["desired"], 2);
    assert_eq!(json["zones"][0]["name"], "a");
    assert_eq!(json["zones"][0]["healthy"], 1);
    assert_eq!(json["sizing"]["source"], "min");
    assert_eq!(json["writtenBy"], "steward-0");
    assert!(json["conditions"][0]["lastTransitionTime"].is_string());
    assert_eq!(json["conditions"][0]["type"], "ZonesAvailable");
    assert_eq!(json["decisions"][0]["action"], "create job");
    assert!(status.to_json().contains("\n  \"pool\""), "pretty-printed");

    let parsed: Status = serde_json::from_str(&status.to_json()).expect("round trip");
    assert_eq!(parsed, status);
}

#[test]
fn status_unchanged_apart_from_timestamps() {
    let pool = example_pool();
    let (cluster, status) = converged_status("2026-12-04T20:00:00Z");

    let later = plan(&pool, None, &cluster.observed, time("2026-12-04T20:05:00Z"));
    let next = Status::next(
        "face-match",
        Some(&status),
        &later.status,
        5,
        "steward-1",
        time("2026-12-04T20:05:00Z"),
    );

    assert!(
        !next.differs_from(&status),
        "only updatedAt and writtenBy moved"
    );
    assert_eq!(
        next.decisions, status.decisions,
        "a repeated decision is not appended"
    );

    let mut changed = next.clone();
    changed.observed_generation = 6;
    assert!(changed.differs_from(&status));
}

#[test]
fn condition_transition_time_moves_only_on_flip() {
    let pool = example_pool();
    let (mut cluster, status) = converged_status("2026-12-04T20:00:00Z");
    let ready_since = status
        .condition(condition_type::READY)
        .expect("ready")
        .last_transition_time;
    assert_eq!(
        status
            .condition(condition_type::READY)
            .expect("ready")
            .status,
        ConditionStatus::True
    );

    // Same status later: the time stays.
    let same = plan(&pool, None, &cluster.observed, time("2026-12-04T20:10:00Z"));
    let same = Status::next(
        "face-match",
        Some(&status),
        &same.status,
        5,
        "steward-0",
        time("2026-12-04T20:10:00Z"),
    );
    assert_eq!(
        same.condition(condition_type::READY)
            .expect("ready")
            .last_transition_time,
        ready_since
    );

    // A worker dies: Ready flips to False and the time moves.
    cluster.observed.allocations.pop();
    let flipped = plan(&pool, None, &cluster.observed, time("2026-12-04T20:20:00Z"));
    let flipped = Status::next(
        "face-match",
        Some(&same),
        &flipped.status,
        5,
        "steward-0",
        time("2026-12-04T20:20:00Z"),
    );
    let ready = flipped.condition(condition_type::READY).expect("ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.last_transition_time, time("2026-12-04T20:20:00Z"));
    assert_eq!(flipped.phase, Phase::Scaling);
    assert!(flipped.differs_from(&same));
}

#[test]
fn repeated_decision_pair_is_kept_once() {
    let pool = example_pool();
    let (cluster, mut status) = converged_status("2026-12-04T20:00:00Z");
    let before = status.decisions.clone();
    // A waiting pool decides the same two things on every reconcile.
    let mut report = plan(&pool, None, &cluster.observed, time("2026-12-04T20:00:00Z")).status;
    report.decisions.clear();
    for (action, reason) in [
        ("planner writes deferred", "a rollout owns the job"),
        (
            "scale deferred",
            "counts change after the new job version is registered",
        ),
    ] {
        report
            .decisions
            .push(steward::reconcile::status::DecisionReport {
                action: action.to_owned(),
                reason: reason.to_owned(),
            });
    }

    for minute in 1..=5 {
        let now = time(&format!("2026-12-04T20:0{minute}:00Z"));
        status = Status::next("face-match", Some(&status), &report, 5, "steward-0", now);
    }

    assert_eq!(
        status.decisions.len(),
        before.len() + 2,
        "{:#?}",
        status.decisions
    );
    assert_eq!(status.decisions[..before.len()], before[..]);
    let newest: Vec<&str> = status.decisions[before.len()..]
        .iter()
        .map(|decision| decision.action.as_str())
        .collect();
    assert_eq!(newest, ["planner writes deferred", "scale deferred"]);
}

#[test]
fn status_keeps_last_twenty_decisions() {
    let pool = example_pool();
    let (cluster, mut status) = converged_status("2026-12-04T20:00:00Z");

    for workers in 0..30u32 {
        let pinned = override_of(workers, "2026-12-04T22:00:00Z", false);
        let step = plan(
            &pool,
            Some(&pinned),
            &cluster.observed,
            time("2026-12-04T20:01:00Z"),
        );
        status = Status::next(
            "face-match",
            Some(&status),
            &step.status,
            5,
            "steward-0",
            time("2026-12-04T20:01:00Z"),
        );
    }

    assert_eq!(status.decisions.len(), MAX_DECISIONS);
    let last = status.last_decision().expect("decision");
    assert!(
        last.reason.contains("override of 29"),
        "newest last: {}",
        last.reason
    );
    assert_eq!(status.r#override.as_ref().map(|o| o.workers), Some(29));
    let json: serde_json::Value = serde_json::from_str(&status.to_json()).expect("valid JSON");
    assert_eq!(json["override"]["workers"], 29);
    assert_eq!(json["override"]["state"], "active");
    assert_eq!(json["override"]["by"], "alice");
    assert!(
        json["sizing"].get("override").is_none(),
        "the override sits at the top level only"
    );
}

#[test]
fn table_lists_pool_columns() {
    let (_, status) = converged_status("2026-12-04T20:00:00Z");
    let table = format_list(
        std::slice::from_ref(&status),
        OutputFormat::Table,
        time("2026-12-04T20:03:00Z"),
    )
    .expect("formats");
    let lines: Vec<&str> = table.lines().collect();

    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "DESIRED", "RUNNING", "HEALTHY", "ZONES", "SOURCE", "LAST",
            "DECISION", "AGE"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..5], ["face-match", "Ready", "2", "2", "2"]);
    assert_eq!(row[5..7], ["a=1/1", "b=1/1"]);
    assert_eq!(row[7], "Min");
    assert_eq!(*row.last().expect("age"), "3m");
}

#[test]
fn list_source_shows_autoscaler_rule() {
    let (_, mut status) = converged_status("2026-12-04T20:00:00Z");
    let now = time("2026-12-04T20:00:00Z");
    // The autoscaler sized the pool, but its own rule raised the prediction to min.
    let decision: steward::autoscale::Decision = serde_json::from_value(serde_json::json!({
        "at": 0,
        "desired": 2,
        "source": "min",
        "prediction": null,
        "inputs": {
            "historySamples": 60,
            "liveRps": 1.0,
            "currentDesired": 2,
            "readyWorkers": 2,
            "startingWorkers": 0,
            "recommended": 1
        },
        "act": true,
        "reason": "raised to workers.min"
    }))
    .expect("a decision");
    let sizing = status.sizing.as_mut().expect("sizing");
    sizing.source = steward::reconcile::SizingSource::Autoscaler;
    sizing.autoscaler = Some(steward::reconcile::sizing::AutoscalerStatus {
        decision: Some(decision),
        ..Default::default()
    });

    let table =
        format_list(std::slice::from_ref(&status), OutputFormat::Table, now).expect("formats");

    let row = table.lines().nth(1).expect("a row");
    assert!(row.contains("Autoscaler (min)"), "{table}");
}

#[test]
fn detail_shows_conditions_and_decisions() {
    let (_, mut status) = converged_status("2026-12-04T20:00:00Z");
    // Longer than any built-in column width, so the table must size its columns.
    status
        .conditions
        .push(steward::reconcile::status::Condition {
            r#type: "AutoscalerConfigured".to_owned(),
            status: steward::reconcile::status::ConditionStatus::True,
            reason: "ValidAfterAVeryLongReasonName".to_owned(),
            message: "spec.autoscaling is valid".to_owned(),
            last_transition_time: time("2026-12-04T20:00:00Z"),
        });
    let text =
        format_one(&status, OutputFormat::Table, time("2026-12-04T20:00:30Z")).expect("formats");

    assert!(text.contains("Name:                face-match"), "{text}");
    assert!(text.contains("Phase:               Ready"), "{text}");
    assert!(text.contains("Conditions:\n"), "{text}");
    let rows: Vec<&str> = text
        .split("Conditions:\n")
        .nth(1)
        .expect("conditions follow")
        .lines()
        .take_while(|line| !line.is_empty())
        .collect();
    let ready = rows
        .iter()
        .find(|row| row.trim_start().starts_with("Ready "))
        .expect("a Ready row");
    let words: Vec<&str> = ready.split_whitespace().collect();
    assert_eq!(words[..3], ["Ready", "True", "WorkersReady"], "{ready}");
    assert!(text.contains("JobOwned"), "{text}");
    // Every row's status and reason start in the same columns, whatever the type's length.
    let columns = |row: &str| {
        let status = ["True", "False", "Unknown"]
            .iter()
            .filter_map(|word| row.find(&format!(" {word} ")))
            .min()
            .expect("a status column");
        let reason = status + 1 + row[status + 1..].find(' ').expect("after the status");
        let reason = reason + row[reason..].find(|c: char| c != ' ').expect("a reason");
        (status, reason)
    };
    assert!(rows.len() >= 2, "{text}");
    for row in &rows {
        assert_eq!(
            columns(row),
            columns(rows[0]),
            "misaligned row {row:?}\n{text}"
        );
    }
    assert!(
        text.contains("Recent decisions (newest first):\n  30s ago  no change"),
        "{text}"
    );
    assert!(text.contains("create job"), "{text}");
}

#[test]
fn yaml_and_json_outputs_parse() {
    let (_, status) = converged_status("2026-12-04T20:00:00Z");
    let now = time("2026-12-04T20:00:00Z");

    let yaml = format_one(&status, OutputFormat::Yaml, now).expect("yaml");
    let from_yaml: Status = serde_saphyr::from_str(&yaml).expect("YAML parses back");
    assert_eq!(from_yaml, status);

    let json = format_list(std::slice::from_ref(&status), OutputFormat::Json, now).expect("json");
    let from_json: Vec<Status> = serde_json::from_str(&json).expect("JSON parses back");
    assert_eq!(from_json, vec![status]);
}

#[test]
fn age_uses_kubectl_units() {
    let now = time("2026-12-10T00:00:00Z");
    assert_eq!(age(time("2026-12-09T23:59:15Z"), now), "45s");
    assert_eq!(age(time("2026-12-09T23:48:00Z"), now), "12m");
    assert_eq!(age(time("2026-12-09T19:00:00Z"), now), "5h");
    assert_eq!(age(time("2026-12-07T00:00:00Z"), now), "3d");
}
