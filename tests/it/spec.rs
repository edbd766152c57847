//! Object loading and validation: examples, every rejection reason with its position, round
//! trips, hostile input, the committed JSON Schemas and the `steward validate` command.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use steward::nomad::TaskGroup;
use steward::spec::{self, Document, ValidationReport};

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn load_error(path: &Path) -> ValidationReport {
    match spec::load_paths(&[path.to_path_buf()]) {
        Ok(documents) => panic!(
            "{} must be rejected, but loaded {} document(s)",
            path.display(),
            documents.len()
        ),
        Err(report) => report,
    }
}

#[test]
fn examples_are_valid() {
    let documents = spec::load_paths(&[repo_path("examples/pools")])
        .unwrap_or_else(|report| panic!("examples must be valid:\n{report}"));
    let names: Vec<&str> = documents.iter().map(|d| d.document.name()).collect();
    assert!(names.contains(&"face-match"), "found {names:?}");
    assert!(names.contains(&"ocr"), "found {names:?}");
}

#[test]
fn reference_objects_are_valid() {
    for file in ["workerpool.reference.yaml", "override.reference.yaml"] {
        let path = repo_path("crds-equivalent-specs").join(file);
        let documents = spec::load_paths(&[path])
            .unwrap_or_else(|report| panic!("{file} must be valid:\n{report}"));
        assert_eq!(documents.len(), 1, "{file}");
    }
}

#[test]
fn face_match_example_has_gpu_and_pinned_cores() {
    let documents = spec::load_paths(&[repo_path("examples/pools/face-match.yaml")])
        .unwrap_or_else(|report| panic!("{report}"));
    let Document::WorkerPool(pool) = &documents[0].document else {
        panic!("face-match.yaml contains a WorkerPool");
    };
    let task = &pool.spec.template.task_list()[0];
    let resources = task.resources.as_ref().expect("the task sets Resources");
    assert_eq!(resources.cores, Some(4));
    assert_eq!(resources.cpu, None);
    let devices = resources
        .devices
        .as_ref()
        .expect("the task requests a device");
    assert_eq!(devices[0].name, "nvidia/gpu");
    assert_eq!(devices[0].count, Some(1));
    assert_eq!(pool.job_id(), "face-match");
    assert_eq!(pool.job_namespace(), "default");
}

/// Every file in tests/fixtures/invalid/, the one error it must produce, and a word the
/// message must contain.
const INVALID_CASES: &[(&str, &str, usize, &str)] = &[
    ("alias-bomb.yaml", "", 7, "alias"),
    (
        "capacity-not-positive.yaml",
        "spec.autoscaling.capacityPerWorker",
        28,
        "greater than 0",
    ),
    (
        "duplicate-datacenter.yaml",
        "spec.zones[1].datacenter",
        15,
        "dc1",
    ),
    (
        "duplicate-job.yaml",
        "spec.job.id",
        38,
        "already claimed by pool `fixture`",
    ),
    (
        "duplicate-zone-name.yaml",
        "spec.zones[1].name",
        14,
        "zone-a",
    ),
    ("empty-version.yaml", "spec.version", 7, "must not be empty"),
    (
        "headroom-out-of-range.yaml",
        "spec.autoscaling.headroom",
        29,
        "at most 10",
    ),
    (
        "interval-too-short.yaml",
        "spec.autoscaling.interval",
        29,
        "at least 1m",
    ),
    (
        "invalid-duration.yaml",
        "spec.autoscaling.lookback",
        29,
        "\"soon\"",
    ),
    (
        "min-above-max.yaml",
        "spec.workers.min",
        9,
        "at most spec.workers.max (4)",
    ),
    (
        "name-not-dns-label.yaml",
        "metadata.name",
        5,
        "not a DNS label",
    ),
    ("name-too-long.yaml", "metadata.name", 5, "at most 63"),
    ("negative-count.yaml", "spec.workers.min", 9, "at least 0"),
    ("no-zones.yaml", "spec.zones", 11, "at least one zone"),
    (
        "override-above-max.yaml",
        "spec.workers",
        35,
        "`force: true`",
    ),
    (
        "override-empty-reason.yaml",
        "spec.reason",
        8,
        "must not be empty",
    ),
    ("override-invalid-until.yaml", "spec.until", 9, "RFC 3339"),
    (
        "override-negative-workers.yaml",
        "spec.workers",
        7,
        "at least 0",
    ),
    (
        "override-until-past.yaml",
        "spec.until",
        9,
        "not in the future",
    ),
    (
        "override-without-reason.yaml",
        "spec.reason",
        6,
        "missing required field `reason`",
    ),
    (
        "stabilization-shorter-than-interval.yaml",
        "spec.autoscaling.scaleDown.stabilization",
        31,
        "at least the interval (20m)",
    ),
    ("syntax-error.yaml", "", 11, "invalid YAML"),
    (
        "template-count-set.yaml",
        "spec.template.Count",
        17,
        "remove `Count`",
    ),
    (
        "template-cpu-and-cores.yaml",
        "spec.template.Tasks[0].Resources.Cores",
        22,
        "not both",
    ),
    (
        "template-cpu-too-small.yaml",
        "spec.template.Tasks[0].Resources.CPU",
        21,
        "at least 1 MHz",
    ),
    (
        "template-memory-too-small.yaml",
        "spec.template.Tasks[0].Resources.MemoryMB",
        22,
        "at least 10 MiB",
    ),
    (
        "template-name-set.yaml",
        "spec.template.Name",
        17,
        "remove `Name`",
    ),
    (
        "template-no-tasks.yaml",
        "spec.template.Tasks",
        17,
        "at least one task",
    ),
    (
        "unknown-field.yaml",
        "spec.workers.maxx",
        10,
        "did you mean `max`?",
    ),
    (
        "unknown-metric-source.yaml",
        "spec.autoscaling.metric.source",
        25,
        "`prometheus`, `rabbitmq`, `csv`",
    ),
    (
        "unknown-template-field.yaml",
        "spec.template.Tasks[0].Resources.MemoryMb",
        22,
        "did you mean `MemoryMB`?",
    ),
    (
        "wrong-api-version.yaml",
        "apiVersion",
        2,
        "must be `steward/v1`",
    ),
    ("wrong-kind.yaml", "kind", 3, "`WorkerPool` or `Override`"),
    (
        "wrong-type.yaml",
        "spec.workers.min",
        9,
        "expected an integer",
    ),
    (
        "zone-datacenter-and-constraint.yaml",
        "spec.zones[1]",
        14,
        "sets both",
    ),
    (
        "zone-without-selector.yaml",
        "spec.zones[1]",
        14,
        "sets neither",
    ),
];

#[test]
fn invalid_fixtures_report_path_and_line() {
    for &(file, path, line, words) in INVALID_CASES {
        let fixture = repo_path("tests/fixtures/invalid").join(file);
        let report = load_error(&fixture);
        assert_eq!(
            report.errors.len(),
            1,
            "{file}: expected one error, got\n{report}"
        );
        let error = &report.errors[0];
        assert_eq!(
            error.source,
            fixture.display().to_string(),
            "{file}: source"
        );
        assert_eq!(error.path, path, "{file}: path in {error}");
        assert_eq!(error.line, Some(line), "{file}: line in {error}");
        assert!(error.column.is_some(), "{file}: column in {error}");
        assert!(error.message.contains(words), "{file}: message {error}");
    }
}

#[test]
fn every_invalid_fixture_has_a_case() {
    let dir = repo_path("tests/fixtures/invalid");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/invalid exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let cases: Vec<String> = INVALID_CASES.iter().map(|c| c.0.to_owned()).collect();
    assert_eq!(files, cases);
}

#[test]
fn document_reports_all_errors_at_once() {
    let text = "\
apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: Bad_Name
spec:
  version: \"\"
  workers: {min: 5, max: 2}
  zones: []
  template:
    Tasks:
      - Name: worker
        Driver: docker
        Resources: {CPU: 100, Cores: 1, MemoryMB: 5, Typo: 1}
";
    let report = spec::parse_str(text, "pool.yaml").expect_err("the pool is invalid");
    let paths: Vec<&str> = report.errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata.name",
            "spec.version",
            "spec.workers.min",
            "spec.zones",
            "spec.template.Tasks[0].Resources.Cores",
            "spec.template.Tasks[0].Resources.MemoryMB",
            "spec.template.Tasks[0].Resources.Typo",
        ],
        "{report}"
    );
}

#[test]
fn report_display_has_one_line_per_error() {
    let text = "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: x\nspec:\n  workers: 1\n  reason: \"\"\n  until: 2099-01-01T00:00:00Z\n  extra: 1\n";
    let report = spec::parse_str(text, "o.yaml").expect_err("the override is invalid");
    let printed = report.to_string();
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(
        lines[0].starts_with("o.yaml:7:3: spec.reason: "),
        "{printed}"
    );
    assert!(
        lines[1].starts_with("o.yaml:9:3: spec.extra: unknown field"),
        "{printed}"
    );
}

#[test]
fn missing_spec_reported_once() {
    let text = "apiVersion: steward/v1\nkind: WorkerPool\nmetadata:\n  name: web\n";
    let report = spec::parse_str(text, "pool.yaml").expect_err("spec is required");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "spec");
    assert_eq!(report.errors[0].message, "missing required field `spec`");
}

#[test]
fn bare_number_duration_gets_unit_hint() {
    let example = std::fs::read_to_string(repo_path("examples/pools/face-match.yaml"))
        .expect("the example pool");
    assert!(example.contains("interval: 20m"), "the example changed");
    let text = example.replace("interval: 20m", "interval: 20");

    let report = spec::parse_str(&text, "pool.yaml").expect_err("a number is not a duration");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "spec.autoscaling.interval");
    assert!(
        report.errors[0].message.ends_with(
            "a duration needs a unit, such as \"20m\" for 20 minutes or \"20s\" for 20 seconds"
        ),
        "{report}"
    );
}

#[test]
fn out_of_range_integer_names_field() {
    let text = "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: x\nspec:\n  workers: 99999999999\n  reason: r\n  until: 2099-01-01T00:00:00Z\n";
    let report = spec::parse_str(text, "o.yaml").expect_err("above u32");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "spec.workers");
    assert_eq!(report.errors[0].line, Some(6));
    assert!(
        report.errors[0].message.contains("at most 4294967295"),
        "{report}"
    );
}

#[test]
fn wrong_type_for_tagged_union() {
    let pool = std::fs::read_to_string(repo_path("examples/pools/ocr.yaml")).expect("readable");
    let start = pool
        .find("    metric:\n")
        .expect("the example has a metric");
    let end = pool
        .find("    predictor:")
        .expect("the example has a predictor");
    let text = format!("{}    metric: 5\n{}", &pool[..start], &pool[end..]);
    let report = spec::parse_str(&text, "ocr.yaml").expect_err("metric is a number");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "spec.autoscaling.metric");
    assert_eq!(
        report.errors[0].message,
        "expected a mapping, found number 5"
    );
}

#[test]
fn json_input_reports_positions() {
    let text = r#"{
  "apiVersion": "steward/v1",
  "kind": "Override",
  "metadata": {"name": "face-match"},
  "spec": {"workers": 2, "reason": "drill", "until": "2099-01-01T00:00:00Z", "forse": true}
}"#;
    let report = spec::parse_str(text, "o.json").expect_err("`forse` is unknown");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "spec.forse");
    assert_eq!(report.errors[0].line, Some(5));
    assert!(report.errors[0].message.contains("did you mean `force`?"));
}

#[test]
fn several_documents_in_one_text() {
    let pool = std::fs::read_to_string(repo_path("examples/pools/ocr.yaml")).expect("readable");
    let text = format!(
        "{pool}---\napiVersion: steward/v1\nkind: Override\nmetadata:\n  name: ocr\nspec:\n  workers: 8\n  reason: backlog\n  until: 2099-01-01T00:00:00Z\n"
    );
    let documents = spec::parse_str(&text, "all.yaml").unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(documents.len(), 2);
    assert_eq!(documents[0].document.kind(), "WorkerPool");
    assert_eq!(documents[1].document.kind(), "Override");
    assert_eq!(documents[1].index, 1);
}

#[test]
fn expired_override_loads_when_stored() {
    let text =
        std::fs::read_to_string(repo_path("tests/fixtures/invalid/override-until-past.yaml"))
            .expect("readable");
    let documents = spec::parse_stored(&text, "consul").unwrap_or_else(|r| panic!("{r}"));
    let Document::Override(item) = &documents[0].document else {
        panic!("the fixture contains an Override");
    };
    assert!(!item.is_active(jiff::Timestamp::now()));
    assert!(spec::validate_override(item, None).is_empty());
    assert_eq!(
        spec::validate_override(item, Some(jiff::Timestamp::now())).len(),
        1
    );
}

#[test]
fn two_pools_with_one_job_across_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ocr = std::fs::read_to_string(repo_path("examples/pools/ocr.yaml")).expect("readable");
    std::fs::write(dir.path().join("a.yaml"), &ocr).expect("writable");
    let renamed = ocr.replace("  name: ocr\n", "  name: ocr-copy\n");
    std::fs::write(dir.path().join("b.yml"), renamed).expect("writable");
    let report = load_error(dir.path());
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.errors[0].source.ends_with("b.yml"), "{report}");
    assert_eq!(report.errors[0].path, "spec.job.id");
}

#[test]
fn directory_is_read_recursively_in_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ocr = std::fs::read_to_string(repo_path("examples/pools/ocr.yaml")).expect("readable");
    std::fs::create_dir(dir.path().join("nested")).expect("writable");
    for (file, name) in [("nested/c.json", "c"), ("b.yaml", "b"), ("a.yml", "a")] {
        let pool = ocr
            .replace("  name: ocr\n", &format!("  name: {name}\n"))
            .replace("    id: ocr-workers\n", &format!("    id: {name}\n"));
        let text = if file.ends_with(".json") {
            let documents = spec::parse_str(&pool, file).unwrap_or_else(|r| panic!("{r}"));
            let Document::WorkerPool(pool) = &documents[0].document else {
                panic!("a pool");
            };
            serde_json::to_string_pretty(pool).expect("serializable")
        } else {
            pool
        };
        std::fs::write(dir.path().join(file), text).expect("writable");
    }
    std::fs::write(dir.path().join("notes.txt"), "not an object").expect("writable");
    let documents = spec::load_paths(&[dir.path().to_path_buf()]).unwrap_or_else(|r| panic!("{r}"));
    let names: Vec<&str> = documents.iter().map(|d| d.document.name()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn empty_and_non_object_inputs_are_rejected() {
    let report = spec::parse_str("# only a comment\n", "empty.yaml").expect_err("no object");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(
        report.errors[0].message.contains("contains no document"),
        "{report}"
    );

    let report = spec::parse_str("- a\n- b\n", "list.yaml").expect_err("not an object");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert_eq!(report.errors[0].path, "");
    assert_eq!(report.errors[0].line, Some(1));
    assert!(
        report.errors[0].message.contains("expected an object"),
        "{report}"
    );
}

#[test]
fn missing_file_is_reported() {
    let report = load_error(Path::new("/nonexistent/steward/pool.yaml"));
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].message.contains("cannot read file"),
        "{report}"
    );
}

#[test]
fn deep_nesting_fails_fast() {
    let depth = 100_000;
    let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let report = spec::parse_str(&text, "deep.yaml").expect_err("too deep");
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.errors[0].message.contains("deeper than"), "{report}");

    let block: String = (0..200)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    let report = spec::parse_str(&block, "deep-block.yaml").expect_err("too deep");
    assert!(report.errors[0].message.contains("deeper than"), "{report}");
}

#[test]
fn large_file_is_rejected_before_reading() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("huge.yaml");
    let file = std::fs::File::create(&path).expect("writable");
    file.set_len(50 * 1024 * 1024).expect("sparse file");
    let report = load_error(&path);
    assert_eq!(report.errors.len(), 1, "{report}");
    assert!(report.errors[0].message.contains("4 MiB"), "{report}");
    assert!(report.errors[0].message.contains("512 KiB"), "{report}");
}

#[test]
fn large_text_is_rejected() {
    let text = format!("a: \"{}\"\n", "x".repeat(spec::MAX_INPUT_BYTES));
    let report = spec::parse_str(&text, "big.yaml").expect_err("over the limit");
    assert!(report.errors[0].message.contains("4 MiB"), "{report}");
}

#[test]
fn committed_schemas_match_types() {
    for (file, schema) in [
        ("workerpool.schema.json", spec::workerpool_schema()),
        ("override.schema.json", spec::override_schema()),
    ] {
        let path = repo_path("crds-equivalent-specs").join(file);
        let generated = format!(
            "{}\n",
            serde_json::to_string_pretty(&schema).expect("a schema serializes")
        );
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &generated).expect("writable schema file");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} differs from the schema generated from the Rust types; regenerate it with \
             `UPDATE_SCHEMAS=1 cargo test --test it spec::committed_schemas_match_types` or \
             `cargo run -- schema {} > crds-equivalent-specs/{file}`",
            if file.starts_with("override") {
                "Override"
            } else {
                "WorkerPool"
            }
        );
    }
}

/// Removes `null` members, which Nomad's API client sends for unset fields.
fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Collects the paths of `original` whose value differs in `round_tripped` or is missing.
fn differences(original: &Value, round_tripped: Option<&Value>, path: &str, out: &mut Vec<String>) {
    match (original, round_tripped) {
        (Value::Object(a), Some(Value::Object(b))) => {
            for (key, value) in a {
                differences(value, b.get(key), &format!("{path}.{key}"), out);
            }
        }
        (Value::Array(a), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, value) in a.iter().enumerate() {
                differences(value, b.get(i), &format!("{path}[{i}]"), out);
            }
        }
        (a, Some(b)) if a == b => {}
        _ => out.push(path.to_owned()),
    }
}

/// The task groups of two sample payloads from Nomad's job API documentation (Create Job, and
/// List Job Versions with `diffs=true`), copied unchanged, survive JSON and YAML round trips
/// through [`TaskGroup`] without losing a field.
#[test]
fn nomad_task_groups_round_trip() {
    let read = |file: &str| -> Value {
        let path = repo_path("tests/fixtures/nomad").join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"))
    };
    let register = read("job-register-request.json");
    let versions = read("job-versions-with-diffs.json");

    let mut groups: Vec<Value> = register["Job"]["TaskGroups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for version in versions["Versions"].as_array().into_iter().flatten() {
        groups.extend(
            version["TaskGroups"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }
    assert_eq!(groups.len(), 3, "one group in the request, one per version");

    for mut original in groups {
        strip_nulls(&mut original);
        let group: TaskGroup = serde_json::from_value(original.clone()).expect("a task group");
        let json = serde_json::to_value(&group).expect("serializable");
        let mut lost = Vec::new();
        differences(&original, Some(&json), "", &mut lost);
        assert!(lost.is_empty(), "fields changed or dropped: {lost:?}");

        let yaml = serde_saphyr::to_string(&group).expect("serializable as YAML");
        let back: TaskGroup = serde_saphyr::from_str(&yaml).expect("YAML parses back");
        assert_eq!(back, group);
    }
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,20}[a-z0-9]"
}

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,30}",
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("1.0".to_owned()),
        Just("0755".to_owned()),
        Just("- item".to_owned()),
        Just("key: value".to_owned()),
        Just("multi\nline\n".to_owned()),
    ]
}

prop_compose! {
    fn arbitrary_pool()(
        name in dns_label(),
        version in "[a-z0-9./:-]{1,40}",
        min in 0u32..50,
        extra in 0u32..50,
        zones in prop::collection::btree_set(dns_label(), 1..4),
        label in arbitrary_text(),
        headroom in 0.0f64..10.0,
        capacity in 0.1f64..1000.0,
        interval_minutes in 1u64..120,
        paused in any::<bool>(),
        memory in 10i64..100_000,
        env_value in arbitrary_text(),
    ) -> spec::WorkerPool {
        let text = format!(
            "apiVersion: steward/v1\nkind: WorkerPool\nmetadata:\n  name: {name}\nspec:\n  version: x\n  workers: {{min: 0, max: 0}}\n  zones: []\n  template:\n    Tasks:\n      - Name: main\n        Driver: exec\n  autoscaling:\n    metric: {{source: csv, path: trace.csv}}\n    capacityPerWorker: 1\n"
        );
        let mut pool: spec::WorkerPool = serde_saphyr::from_str(&text).expect("base pool parses");

        pool.spec.version = version;
        pool.spec.workers = spec::WorkerBounds { min, max: min + extra };
        pool.spec.zones = zones
            .into_iter()
            .enumerate()
            .map(|(i, zone)| spec::Zone {
                datacenter: Some(format!("dc{i}")),
                name: zone,
                constraint: None,
            })
            .collect();
        pool.metadata.labels.insert("note".to_owned(), label);
        pool.spec.paused = paused;

        let autoscaling = pool.spec.autoscaling.as_mut().expect("set above");
        autoscaling.headroom = headroom;
        autoscaling.capacity_per_worker = capacity;
        autoscaling.interval = spec::Duration::from_mins(interval_minutes);
        autoscaling.scale_down.stabilization = spec::Duration::from_mins(interval_minutes * 2);

        let task = &mut pool.spec.template.tasks.as_mut().expect("one task")[0];
        task.resources = Some(steward::nomad::Resources {
            cpu: Some(100),
            memory_mb: Some(memory),
            ..Default::default()
        });
        task.env = Some([("VALUE".to_owned(), env_value)].into_iter().collect());
        pool
    }
}

proptest! {
    #[test]
    fn pool_yaml_round_trips(pool in arbitrary_pool()) {
        let errors = spec::validate_pool(&pool);
        prop_assert!(errors.is_empty(), "generated pool is invalid: {errors:?}");
        let document = Document::WorkerPool(pool);
        let yaml = spec::to_yaml(&document);
        prop_assert!(yaml.ends_with('\n'));
        let loaded = spec::parse_str(&yaml, "generated.yaml")
            .map_err(|report| TestCaseError::fail(format!("{report}\n{yaml}")))?;
        prop_assert_eq!(&loaded[0].document, &document);
        prop_assert_eq!(spec::to_yaml(&loaded[0].document), yaml);
    }
}

mod cli {
    use super::repo_path;

    fn steward() -> assert_cmd::Command {
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_steward"))
    }

    #[test]
    fn validate_accepts_examples() {
        let output = steward()
            .args(["validate", "-f"])
            .arg(repo_path("examples/pools"))
            .output()
            .expect("steward runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        assert!(
            stdout.contains("face-match.yaml: WorkerPool face-match is valid"),
            "{stdout}"
        );
        assert!(
            stdout.contains("ocr.yaml: WorkerPool ocr is valid"),
            "{stdout}"
        );
        assert!(stdout.contains("2 valid documents"), "{stdout}");
    }

    #[test]
    fn validate_rejects_with_exit_2() {
        let fixture = repo_path("tests/fixtures/invalid/min-above-max.yaml");
        let output = steward()
            .args(["validate", "-f"])
            .arg(&fixture)
            .output()
            .expect("steward runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "{}:9:5: spec.workers.min: must be at most spec.workers.max (4), found 5",
                fixture.display()
            )
        );
        assert!(output.stdout.is_empty());
    }

    #[test]
    fn validate_reads_stdin() {
        let text = std::fs::read_to_string(repo_path("tests/fixtures/invalid/unknown-field.yaml"))
            .expect("readable");
        let output = steward()
            .args(["validate", "-f", "-"])
            .write_stdin(text)
            .output()
            .expect("steward runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with("<stdin>:10:5: spec.workers.maxx: unknown field"),
            "{stderr}"
        );
    }

    #[test]
    fn validate_requires_a_file() {
        let output = steward().arg("validate").output().expect("steward runs");
        assert_eq!(output.status.code(), Some(2));
    }

    #[test]
    fn schema_command_matches_committed_file() {
        let output = steward()
            .args(["schema", "Override"])
            .output()
            .expect("steward runs");
        assert_eq!(output.status.code(), Some(0));
        let committed =
            std::fs::read_to_string(repo_path("crds-equivalent-specs/override.schema.json"))
                .expect("readable");
        assert!(
            String::from_utf8_lossy(&output.stdout) == committed,
            "`steward schema Override` differs from crds-equivalent-specs/override.schema.json"
        );
    }

    #[test]
    fn version_flag_prints_version() {
        let output = steward().arg("--version").output().expect("steward runs");
        assert_eq!(output.status.code(), Some(0));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            stdout.trim(),
            format!("steward {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn schema_to_closed_pipe_exits_quietly() {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("schema")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run steward schema");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn schema_to_full_device_fails() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        // NOTE: only systems with /dev/full (Linux) can run this check.
        return;
    };
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_steward"))
        .arg("schema")
        .stdout(full)
        .output()
        .expect("run steward schema");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed to write to standard output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A minimal valid pool whose `spec.workers`, `spec.autoscaling.lookback` (line 22) and the
/// template's `KillTimeout` can be replaced.
fn small_pool(workers: &str, lookback: &str, kill_timeout: &str) -> String {
    format!(
        "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: web
spec:
  version: \"1\"
  template:
    Tasks:
      - Name: web
        Driver: docker
        KillTimeout: {kill_timeout}
        Resources:
          CPU: 500
          MemoryMB: 256
  workers:
{workers}
  zones:
    - name: a
      datacenter: dc-a
  autoscaling:
    lookback: {lookback}
    metric:
      source: csv
      path: trace.csv
    capacityPerWorker: 5
"
    )
}

fn pool_errors(text: &str) -> Vec<String> {
    match spec::parse_str(text, "pool.yaml") {
        Ok(_) => Vec::new(),
        Err(report) => report.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn float_count_names_field_and_line() {
    let errors = pool_errors(&small_pool("    min: 3e0\n    max: 5", "20m", "10s"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("pool.yaml:16:5: spec.workers.min: expected a whole number"),
        "{errors:?}"
    );
    assert!(!errors[0].contains("u32"), "{errors:?}");
}

#[test]
fn leading_zero_count_explained() {
    let errors = pool_errors(&small_pool("    min: 030\n    max: 50", "20m", "10s"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("spec.workers.min"), "{errors:?}");
    assert!(errors[0].contains("write 30"), "{errors:?}");
}

#[test]
fn durations_accept_days_reject_calendar_units() {
    let workers = "    min: 1\n    max: 5";
    assert_eq!(
        pool_errors(&small_pool(workers, "1d", "10s")),
        Vec::<String>::new()
    );
    assert_eq!(
        pool_errors(&small_pool(workers, "P1D", "10s")),
        Vec::<String>::new()
    );
    for bad in ["P1Y", "PT", "\"1 fortnight\"", "99999999999999999999h"] {
        let errors = pool_errors(&small_pool(workers, bad, "10s"));
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(
            errors[0].starts_with("pool.yaml:22:5: spec.autoscaling.lookback: invalid duration"),
            "{bad}: {errors:?}"
        );
    }
}

#[test]
fn template_duration_error_shows_format() {
    let errors = pool_errors(&small_pool("    min: 1\n    max: 5", "20m", "2 minutes"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("spec.template.Tasks[0].KillTimeout"),
        "{errors:?}"
    );
    assert!(errors[0].contains("Go duration such as"), "{errors:?}");
}

#[test]
fn to_yaml_prints_readable_template_durations() {
    let loaded = spec::parse_str(
        &small_pool("    min: 1\n    max: 5", "90m", "10m"),
        "pool.yaml",
    )
    .unwrap_or_else(|report| panic!("{report}"));
    let Document::WorkerPool(pool) = &loaded[0].document else {
        panic!("expected a pool");
    };
    let yaml = pool.to_yaml();
    assert!(yaml.contains("KillTimeout: 10m"), "{yaml}");
    assert!(yaml.contains("lookback: 1h30m"), "{yaml}");
    assert!(!yaml.contains("600000000000"), "{yaml}");
    let again = spec::parse_stored(&yaml, "again.yaml").unwrap_or_else(|r| panic!("{r}\n{yaml}"));
    assert_eq!(again[0].document, loaded[0].document);

    let json = serde_json::to_value(pool).expect("serialize");
    assert_eq!(
        json["spec"]["template"]["Tasks"][0]["KillTimeout"],
        600_000_000_000_i64
    );
}

#[test]
fn duplicate_name_names_first_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pool = small_pool("    min: 1\n    max: 5", "1h", "10s");
    let first = dir.path().join("a.yaml");
    let second = dir.path().join("b.yaml");
    std::fs::write(&first, &pool).expect("write a.yaml");
    std::fs::write(&second, pool.replace("dc-a", "dc-b")).expect("write b.yaml");

    let report = spec::load_paths(&[first.clone(), second]).expect_err("duplicate names");
    let message = report
        .errors
        .iter()
        .find(|e| e.path == "metadata.name")
        .unwrap_or_else(|| panic!("no metadata.name error in {report}"))
        .to_string();
    let expected = format!("{}:4:3 (document 1)", first.display());
    assert!(message.contains(&expected), "{message}");
    assert!(!message.contains("document 0"), "{message}");
}

#[test]
fn template_enums_are_checked() {
    let pool = small_pool("    min: 1\n    max: 5", "1h", "10s");
    let cases = [
        (
            "    RestartPolicy:\n      Mode: retry\n",
            "spec.template.RestartPolicy.Mode",
        ),
        (
            "    ReschedulePolicy:\n      DelayFunction: linear\n",
            "spec.template.ReschedulePolicy.DelayFunction",
        ),
        (
            "    Migrate:\n      HealthCheck: always\n",
            "spec.template.Migrate.HealthCheck",
        ),
    ];
    for (block, path) in cases {
        let text = pool.replace("  template:\n", &format!("  template:\n{block}"));
        let errors = pool_errors(&text);
        assert_eq!(errors.len(), 1, "{block}: {errors:?}");
        assert!(errors[0].contains(path), "{errors:?}");
        assert!(errors[0].contains("must be one of"), "{errors:?}");
    }

    let task_mode = pool.replace(
        "        Driver: docker\n",
        "        Driver: docker\n        RestartPolicy:\n          Mode: retry\n",
    );
    let errors = pool_errors(&task_mode);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("spec.template.Tasks[0].RestartPolicy.Mode"),
        "{errors:?}"
    );

    let small_memory = pool.replace("MemoryMB: 256", "MemoryMB: 9");
    let errors = pool_errors(&small_memory);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("MemoryMB: must be at least 10"),
        "{errors:?}"
    );
    let valid = pool.replace(
        "  template:\n",
        "  template:\n    RestartPolicy:\n      Mode: fail\n",
    );
    assert_eq!(pool_errors(&valid), Vec::<String>::new());
}

#[test]
fn oversized_pool_is_rejected() {
    let pool = small_pool("    min: 1\n    max: 5", "1h", "10s");
    let big = "x".repeat(spec::MAX_STORED_BYTES);
    let text = pool.replace(
        "  name: web\n",
        &format!("  name: web\n  annotations:\n    note: {big}\n"),
    );
    let errors = pool_errors(&text);
    assert_eq!(
        errors.len(),
        1,
        "{:?}",
        errors
            .iter()
            .map(|e| &e[..200.min(e.len())])
            .collect::<Vec<_>>()
    );
    assert!(
        errors[0].contains("above the limit of 389120 bytes"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("base64"), "{}", errors[0]);

    let fits = pool.replace(
        "  name: web\n",
        &format!(
            "  name: web\n  annotations:\n    note: {}\n",
            "x".repeat(300_000)
        ),
    );
    assert_eq!(pool_errors(&fits), Vec::<String>::new());
}
