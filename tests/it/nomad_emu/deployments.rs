//! Deployments: canaries and promotion, auto-revert, scale blocked while active.

use reqwest::StatusCode;
use serde_json::{Value, json};
use steward::nomad::{Deployment, Health, Job};

use super::jobs::wait_deployment_done;
use super::{Harness, service_job};

fn canary_job(image: &str, canary: i64, auto_revert: bool) -> Value {
    let mut job = service_job("web", 2, image);
    job["Update"] = json!({
        "MaxParallel": 1,
        "Canary": canary,
        "MinHealthyTime": 10_000_000_000_i64,
        "AutoRevert": auto_revert,
    });
    job
}

async fn active_deployment(harness: &Harness) -> Deployment {
    harness
        .eventually("an active deployment of version 1", || async {
            let reply = harness.get("/v1/job/web/deployment").await;
            let deployment: Option<Deployment> = reply.parse();
            deployment.filter(|d| d.job_version == 1 && d.status.as_str() == "running")
        })
        .await
}

#[tokio::test]
async fn canary_is_promoted_and_rollout_completes() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(canary_job("app:1", 1, false)).await;
    harness.running("web", 2).await;
    wait_deployment_done(&harness, "web").await;
    harness.register(canary_job("app:2", 1, false)).await;
    let deployment = active_deployment(&harness).await;

    // The canary is an extra allocation; the old ones keep running.
    let canary_id = harness
        .eventually("a healthy canary", || async {
            let deployment: Deployment = harness
                .get(&format!("/v1/deployment/{}", deployment.id))
                .await
                .parse();
            let state = deployment.task_groups.get("web")?.clone();
            (state.healthy_allocs == 1)
                .then(|| state.placed_canaries.unwrap_or_default().first().cloned())?
        })
        .await;
    let canary = harness
        .get(&format!("/v1/allocation/{canary_id}"))
        .await
        .json();
    assert_eq!(canary["DeploymentStatus"]["Canary"], true);
    assert_eq!(canary["DeploymentStatus"]["Healthy"], true);
    let live = harness
        .allocs("web")
        .await
        .into_iter()
        .filter(|alloc| alloc.desired_status.as_str() == "run")
        .count();
    assert_eq!(live, 3, "two old allocations plus one canary");
    let latest: Deployment = harness.get("/v1/job/web/deployment").await.parse();
    assert_eq!(
        latest.status_description,
        "Deployment is running but requires manual promotion"
    );

    let empty = harness
        .post(
            &format!("/v1/deployment/promote/{}", deployment.id),
            &json!({}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.text, "DeploymentID must be specified");
    let wrong = harness
        .post(
            &format!("/v1/deployment/promote/{}", deployment.id),
            &json!({"DeploymentID": "other", "All": true}),
        )
        .await;
    assert_eq!(wrong.text, "Deployment ID does not match");

    let promote = harness
        .post(
            &format!("/v1/deployment/promote/{}", deployment.id),
            &json!({"DeploymentID": deployment.id, "All": true}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::OK, "{}", promote.text);
    wait_deployment_done(&harness, "web").await;

    let done: Deployment = harness
        .get(&format!("/v1/deployment/{}", deployment.id))
        .await
        .parse();
    assert_eq!(done.status.as_str(), "successful");
    assert_eq!(done.status_description, "Deployment completed successfully");
    let running = harness.running("web", 2).await;
    assert!(running.iter().all(|alloc| alloc.job_version == 1));
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.stable, Some(true));

    let again = harness
        .post(
            &format!("/v1/deployment/promote/{}", deployment.id),
            &json!({"DeploymentID": deployment.id, "All": true}),
        )
        .await;
    assert_eq!(again.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(again.text.contains("has terminal status"), "{}", again.text);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn promote_rejects_unhealthy_canaries() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(canary_job("app:1", 1, false)).await;
    wait_deployment_done(&harness, "web").await;
    // A long pull keeps the canary unhealthy while the promotion is tried.
    harness
        .put(
            "/_sim/images",
            &json!({"image": "app:slow", "pullSeconds": 36000}),
        )
        .await;
    let mut job = canary_job("app:slow", 1, false);
    // Deadlines of 100 simulated hours keep the deployment running while promotion is tried.
    // Nomad requires the healthy deadline to be below the progress deadline.
    job["Update"]["HealthyDeadline"] = json!(360_000_000_000_000_i64);
    job["Update"]["ProgressDeadline"] = json!(360_001_000_000_000_i64);
    harness.register(job).await;
    let deployment = active_deployment(&harness).await;

    let promote = harness
        .post(
            &format!("/v1/deployment/promote/{}", deployment.id),
            &json!({"DeploymentID": deployment.id, "All": true}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        promote
            .text
            .contains("Task group \"web\" has 0/1 healthy allocations"),
        "{}",
        promote.text
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn unhealthy_image_fails_deployment_and_reverts() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(canary_job("app:1", 0, true)).await;
    harness.running("web", 2).await;
    wait_deployment_done(&harness, "web").await;
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(
        job.stable,
        Some(true),
        "the first deployment makes version 0 stable"
    );

    let marked = harness
        .put(
            "/_sim/images",
            &json!({"image": "app:bad", "healthy": false}),
        )
        .await;
    assert_eq!(marked.status, StatusCode::OK);
    harness.register(canary_job("app:bad", 0, true)).await;

    let failed: Deployment = harness
        .eventually("a failed deployment of version 1", || async {
            let list: Vec<Deployment> = harness.get("/v1/job/web/deployments").await.parse();
            list.into_iter()
                .find(|d| d.job_version == 1 && d.status.as_str() == "failed")
        })
        .await;
    assert_eq!(
        failed.status_description,
        "Failed due to unhealthy allocations - rolling back to job version 0"
    );
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.version, Some(2));
    let image = job.groups()[0].task_list()[0]
        .config
        .as_ref()
        .and_then(|config| config.get("image").cloned());
    assert_eq!(image, Some(json!("app:1")));

    let bad = harness
        .allocs("web")
        .await
        .into_iter()
        .find(|alloc| alloc.job_version == 1)
        .expect("an allocation of the bad version");
    let health = bad.deployment_status.map(|status| status.healthy);
    assert_eq!(health, Some(Health::Unhealthy));
    wait_deployment_done(&harness, "web").await;
    harness.running("web", 2).await;
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn scale_is_blocked_while_deployment_is_active() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(canary_job("app:1", 1, false)).await;
    wait_deployment_done(&harness, "web").await;
    harness.register(canary_job("app:2", 1, false)).await;
    let deployment = active_deployment(&harness).await;

    let blocked = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 5, "Target": {"Group": "web"}}),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
    assert_eq!(blocked.text, "job scaling blocked due to active deployment");

    // A request without a count only records an event, which the deployment does not block.
    let event = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Target": {"Group": "web"}, "Message": "count set by register"}),
        )
        .await;
    assert_eq!(event.status, StatusCode::OK, "{}", event.text);
    let status: serde_json::Value = harness.get("/v1/job/web/scale").await.parse();
    let newest = &status["TaskGroups"]["web"]["Events"][0];
    assert_eq!(newest["Message"], "count set by register");
    assert!(newest["Count"].is_null(), "{newest}");
    assert_eq!(newest["PreviousCount"], 2);

    let fail = harness
        .post(
            &format!("/v1/deployment/fail/{}", deployment.id),
            &json!({}),
        )
        .await;
    assert_eq!(fail.status, StatusCode::OK, "{}", fail.text);
    let allowed = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 5, "Target": {"Group": "web"}}),
        )
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.text);
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.groups()[0].count, Some(5));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn pause_stops_rolling_update() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(canary_job("app:1", 1, false)).await;
    wait_deployment_done(&harness, "web").await;
    harness.register(canary_job("app:2", 1, false)).await;
    let deployment = active_deployment(&harness).await;

    let pause = harness
        .post(
            &format!("/v1/deployment/pause/{}", deployment.id),
            &json!({"DeploymentID": deployment.id, "Pause": true}),
        )
        .await;
    assert_eq!(pause.status, StatusCode::OK, "{}", pause.text);
    let paused: Deployment = harness
        .get(&format!("/v1/deployment/{}", deployment.id))
        .await
        .parse();
    assert_eq!(paused.status.as_str(), "paused");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn healthy_canary_is_auto_promoted() {
    let harness = Harness::start(&["dc1"], 3).await;
    let mut job = canary_job("app:1", 1, false);
    job["Update"]["AutoPromote"] = json!(true);
    harness.register(job.clone()).await;
    wait_deployment_done(&harness, "web").await;

    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("app:2");
    harness.register(job).await;
    let deployment = harness
        .eventually("the version 1 deployment", || async {
            let deployment: Option<Deployment> =
                harness.get("/v1/job/web/deployment").await.parse();
            deployment.filter(|d| d.job_version == 1)
        })
        .await;
    wait_deployment_done(&harness, "web").await;

    let done: Deployment = harness
        .get(&format!("/v1/deployment/{}", deployment.id))
        .await
        .parse();
    assert_eq!(done.status.as_str(), "successful");
    let state = &done.task_groups["web"];
    assert!(state.promoted);
    assert_eq!(state.desired_canaries, 1);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn progress_deadline_fails_deployment() {
    let harness = Harness::start(&["dc1"], 3).await;
    let mut job = canary_job("app:1", 1, false);
    harness.register(job.clone()).await;
    wait_deployment_done(&harness, "web").await;

    // Nomad requires HealthyDeadline below ProgressDeadline, and a healthy deadline marks a
    // stuck allocation unhealthy first. Manual health turns the healthy deadline off.
    job["Update"]["HealthCheck"] = json!("manual");
    job["Update"]["HealthyDeadline"] = json!(30_000_000_000_i64);
    job["Update"]["ProgressDeadline"] = json!(60_000_000_000_i64);

    // The canary's image takes ten simulated hours to pull, far past the deadline.
    harness
        .put(
            "/_sim/images",
            &json!({"image": "app:slow", "pullSeconds": 36000}),
        )
        .await;
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("app:slow");
    harness.register(job).await;
    let failed: Deployment = harness
        .eventually("a failed deployment", || async {
            let list: Vec<Deployment> = harness.get("/v1/job/web/deployments").await.parse();
            list.into_iter().find(|d| d.status.as_str() == "failed")
        })
        .await;
    assert_eq!(failed.status_description, "Failed due to progress deadline");
    assert_eq!(failed.job_version, 1);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn healthy_deadline_marks_allocation_unhealthy() {
    let harness = Harness::start(&["dc1"], 3).await;
    let mut job = canary_job("app:1", 0, false);
    job["Update"]["HealthyDeadline"] = json!(60_000_000_000_i64);
    harness.register(job.clone()).await;
    wait_deployment_done(&harness, "web").await;

    harness
        .put(
            "/_sim/images",
            &json!({"image": "app:slow", "pullSeconds": 36000}),
        )
        .await;
    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("app:slow");
    harness.register(job).await;
    let failed: Deployment = harness
        .eventually("a failed deployment", || async {
            let list: Vec<Deployment> = harness.get("/v1/job/web/deployments").await.parse();
            list.into_iter().find(|d| d.status.as_str() == "failed")
        })
        .await;
    assert_eq!(
        failed.status_description,
        "Failed due to unhealthy allocations"
    );
    assert_eq!(failed.task_groups["web"].unhealthy_allocs, 1);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn done_group_ignores_progress_deadline() {
    let harness = Harness::start(&["dc1"], 3).await;
    let group = |name: &str, count: i64, image: &str| {
        json!({
            "Name": name,
            "Count": count,
            "Tasks": [{
                "Name": "app",
                "Driver": "docker",
                "Config": {"image": image},
                "Resources": {"CPU": 100, "MemoryMB": 64}
            }]
        })
    };
    let mut job = json!({
        "ID": "web",
        "Type": "service",
        "Datacenters": ["*"],
        "Update": {
            "MaxParallel": 1,
            "MinHealthyTime": 15_000_000_000_i64,
            "HealthyDeadline": 50_000_000_000_i64,
            "ProgressDeadline": 60_000_000_000_i64,
        },
        "TaskGroups": [group("a", 8, "app:1"), group("b", 1, "app:1")],
    });
    harness.register(job.clone()).await;
    let first: Deployment = harness
        .eventually("the version 0 deployment to end", || async {
            let list: Vec<Deployment> = harness.get("/v1/job/web/deployments").await.parse();
            list.into_iter()
                .find(|d| d.job_version == 0 && !matches!(d.status.as_str(), "running" | "paused"))
        })
        .await;
    assert_eq!(first.status.as_str(), "successful");

    // Only group a changes. Its 8 replacements, one at a time with a 20 s pull on each node
    // and a 15 s minimum healthy time, take well past group b's 60 s progress deadline,
    // while each healthy replacement moves group a's own deadline. Group b comes after a
    // group still in progress.
    job["TaskGroups"][0] = group("a", 8, "app:2");
    harness.register(job).await;
    let finished: Deployment = harness
        .eventually("the version 1 deployment to end", || async {
            let list: Vec<Deployment> = harness.get("/v1/job/web/deployments").await.parse();
            list.into_iter()
                .find(|d| d.job_version == 1 && !matches!(d.status.as_str(), "running" | "paused"))
        })
        .await;

    assert_eq!(
        (
            finished.status.as_str(),
            finished.status_description.as_str()
        ),
        ("successful", "Deployment completed successfully")
    );
    assert_eq!(finished.task_groups["a"].healthy_allocs, 8);
    harness.nomad.shutdown().await;
}
