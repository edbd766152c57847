use serde_json::json;
use steward::nomad::Constraint;
use steward::reconcile::render::{VERSION_ENV, zone_constraint};
use steward::reconcile::{
    GroupVersion, JobKey, RenderError, render_job, render_job_versions, template_differences,
};
use steward::spec::ZoneConstraint;

use super::{example_pool, with_nomad_defaults};

#[test]
fn render_example_pool_job_fields() {
    let pool = example_pool();
    let job = render_job(&pool, &[3, 2]).expect("renders");

    assert_eq!(job.id, "face-match");
    assert_eq!(job.name.as_deref(), Some("face-match"));
    assert_eq!(job.namespace.as_deref(), Some("default"));
    assert_eq!(job.r#type.as_deref(), Some("service"));
    assert_eq!(
        job.datacenters,
        Some(vec!["dc-a".to_owned(), "dc-b".to_owned()])
    );
    assert_eq!(job.meta_value("steward.pool"), Some("face-match"));
    assert_eq!(
        job.meta_value("steward.version"),
        None,
        "a version in job meta would replace every zone's workers at once"
    );
    assert_eq!(job.groups().len(), 2);
}

#[test]
fn render_version_in_group_meta() {
    let pool = example_pool();
    let job = render_job(&pool, &[3, 2]).expect("renders");

    for group in job.groups() {
        let meta = group.meta.as_ref().expect("group meta");
        assert_eq!(
            meta.get("steward.version").map(String::as_str),
            Some("registry.example.com/face-match:1.4.2"),
            "group {}",
            group.name
        );
    }
}

#[test]
fn golden_canary_is_not_drift() {
    let pool = example_pool();
    let version = pool.spec.version.as_str();
    let rendered = render_job(&pool, &[3, 2]).expect("renders");
    // A completed rollout: every zone at spec.version, the golden zone still with Canary = 1,
    // and AutoPromote and AutoRevert off.
    let rolled = render_job_versions(
        &pool,
        &[
            GroupVersion {
                count: 3,
                version,
                canary: 1,
            },
            GroupVersion {
                count: 2,
                version,
                canary: 0,
            },
        ],
    )
    .expect("renders");

    let differences = template_differences(&rendered, &with_nomad_defaults(&rolled, 7));
    assert_eq!(differences, Vec::<String>::new());
}

#[test]
fn other_update_fields_are_drift() {
    let pool = example_pool();
    let rendered = render_job(&pool, &[3, 2]).expect("renders");
    let mut live = with_nomad_defaults(&rendered, 7);
    let groups = live.task_groups.as_mut().expect("groups");
    let update = groups[0].update.as_mut().expect("update block");
    update.max_parallel = Some(3);

    let differences = template_differences(&rendered, &live);
    assert_eq!(differences, vec!["TaskGroups[a].Update.MaxParallel"]);
}

#[test]
fn render_example_pool_groups() {
    let pool = example_pool();
    let job = render_job(&pool, &[3, 2]).expect("renders");

    for (group, (zone, count)) in job.groups().iter().zip([("a", 3), ("b", 2)]) {
        assert_eq!(group.name, zone);
        assert_eq!(group.count, Some(count));
        assert_eq!(
            group.constraints.as_deref(),
            Some(
                &[Constraint::new(
                    "${node.datacenter}",
                    "=",
                    format!("dc-{zone}")
                )][..]
            )
        );

        let update = group.update.as_ref().expect("update block");
        assert_eq!(update.min_healthy_time.map(|d| d.0), Some(45_000_000_000));
        assert_eq!(update.healthy_deadline.map(|d| d.0), Some(480_000_000_000));
        // HealthyDeadline 8m + MinHealthyTime 45s + the default goldenSoak 10m + 1m.
        assert_eq!(
            update.progress_deadline.map(|d| d.0),
            Some(1_185_000_000_000)
        );
        assert_eq!(update.auto_revert, Some(false));
        assert_eq!(update.max_parallel, Some(1));
        assert_eq!(update.health_check.as_deref(), Some("checks"));

        let restart = group.restart_policy.as_ref().expect("restart policy kept");
        assert_eq!(restart.attempts, Some(3));
        assert_eq!(restart.interval.map(|d| d.0), Some(300_000_000_000));
        assert_eq!(restart.delay.map(|d| d.0), Some(15_000_000_000));
        assert_eq!(restart.mode.as_deref(), Some("delay"));

        let network = &group.networks.as_ref().expect("networks kept")[0];
        let port = &network.dynamic_ports.as_ref().expect("dynamic ports")[0];
        assert_eq!(port.label, "http");
        assert_eq!(port.to, Some(8080));
    }
}

#[test]
fn render_example_pool_task() {
    let pool = example_pool();
    let job = render_job(&pool, &[1, 1]).expect("renders");
    let task = &job.groups()[0].task_list()[0];

    assert_eq!(task.name, "worker");
    assert_eq!(task.driver, "docker");
    let config = task.config.as_ref().expect("config");
    assert_eq!(
        config["image"],
        json!("registry.example.com/face-match:1.4.2")
    );
    assert_eq!(config["ports"], json!(["http"]));
    assert_eq!(
        task.env, None,
        "docker tasks carry the version in the image only"
    );

    let resources = task.resources.as_ref().expect("resources");
    assert_eq!(resources.cores, Some(4));
    assert_eq!(resources.cpu, None);
    assert_eq!(resources.memory_mb, Some(16384));
    let device = &resources.devices.as_ref().expect("devices")[0];
    assert_eq!(device.name, "nvidia/gpu");
    assert_eq!(device.count, Some(1));

    let service = &task.services.as_ref().expect("services")[0];
    assert_eq!(service.name, "face-match");
    assert_eq!(service.port_label.as_deref(), Some("http"));
    let check = &service.checks.as_ref().expect("checks")[0];
    assert_eq!(check.r#type, "http");
    assert_eq!(check.path.as_deref(), Some("/healthz"));
    assert_eq!(check.interval.map(|d| d.0), Some(10_000_000_000));
    assert_eq!(check.timeout.map(|d| d.0), Some(2_000_000_000));
}

#[test]
fn render_non_image_driver_sets_env_and_meta() {
    let mut pool = example_pool();
    pool.spec.template.tasks.as_mut().expect("tasks")[0].driver = "raw_exec".to_owned();
    let job = render_job(&pool, &[1, 1]).expect("renders");
    let task = &job.groups()[1].task_list()[0];

    assert_eq!(
        task.env.as_ref().expect("env")[VERSION_ENV],
        "registry.example.com/face-match:1.4.2"
    );
    assert_eq!(
        task.meta.as_ref().expect("meta")["steward.version"],
        "registry.example.com/face-match:1.4.2"
    );
    assert!(!task.config.as_ref().expect("config").contains_key("image"));
}

#[test]
fn render_constraint_zones_use_any_datacenter() {
    let mut pool = example_pool();
    pool.spec.job.id = Some("fm".to_owned());
    pool.spec.job.namespace = Some("ml".to_owned());
    for zone in &mut pool.spec.zones {
        zone.constraint = Some(ZoneConstraint {
            attribute: "${meta.zone}".to_owned(),
            value: zone.name.clone(),
        });
        zone.datacenter = None;
    }
    let job = render_job(&pool, &[1, 0]).expect("renders");

    assert_eq!(
        JobKey::of(&pool),
        JobKey {
            id: "fm".to_owned(),
            namespace: "ml".to_owned()
        }
    );
    assert_eq!(job.id, "fm");
    assert_eq!(job.namespace.as_deref(), Some("ml"));
    assert_eq!(job.datacenters, Some(vec!["*".to_owned()]));
    assert_eq!(
        job.groups()[1].constraints.as_deref(),
        Some(&[Constraint::new("${meta.zone}", "=", "b")][..])
    );
}

#[test]
fn render_rejects_bad_pools() {
    let mut pool = example_pool();
    pool.spec.zones[1].constraint = Some(ZoneConstraint {
        attribute: "${meta.zone}".to_owned(),
        value: "b".to_owned(),
    });
    let error = zone_constraint("face-match", &pool.spec.zones[1]).expect_err("both selectors set");
    assert_eq!(
        error,
        RenderError::ZoneSelector {
            pool: "face-match".to_owned(),
            zone: "b".to_owned()
        }
    );

    let mut pool = example_pool();
    pool.spec.template.tasks = Some(Vec::new());
    assert!(matches!(
        render_job(&pool, &[1, 1]),
        Err(RenderError::NoTasks { .. })
    ));

    let pool = example_pool();
    assert!(matches!(
        render_job(&pool, &[1]),
        Err(RenderError::CountsMismatch {
            zones: 2,
            counts: 1,
            ..
        })
    ));
}

#[test]
fn template_compare_ignores_nomad_defaults_and_counts() {
    let pool = example_pool();
    let rendered = render_job(&pool, &[3, 2]).expect("renders");
    let mut live = with_nomad_defaults(&rendered, 10);
    live.task_groups.as_mut().expect("groups")[0].count = Some(7);

    assert_eq!(template_differences(&rendered, &live), Vec::<String>::new());
}

#[test]
fn template_compare_finds_hand_edits() {
    let pool = example_pool();
    let rendered = render_job(&pool, &[3, 2]).expect("renders");
    let mut live = with_nomad_defaults(&rendered, 10);
    let task = &mut live.task_groups.as_mut().expect("groups")[1]
        .tasks
        .as_mut()
        .expect("tasks")[0];
    task.resources.as_mut().expect("resources").memory_mb = Some(8192);

    let differences = template_differences(&rendered, &live);
    assert_eq!(
        differences,
        vec!["TaskGroups[b].Tasks[0].Resources.MemoryMB".to_owned()]
    );
}
