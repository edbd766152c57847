//! The `steward dev nomad` defaults place the example pools at their maximum size.

use std::path::PathBuf;

use clap::Parser;
use steward::cli::dev_nomad;
use steward::reconcile::render_job;
use steward::spec::{self, Document};

use super::Harness;

#[derive(Debug, Parser)]
struct Command {
    #[command(flatten)]
    args: dev_nomad::Args,
}

fn example_pool(file: &str) -> steward::spec::WorkerPool {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/pools")
        .join(file);
    let documents = spec::load_paths(&[path]).unwrap_or_else(|report| panic!("{report}"));
    match &documents[0].document {
        Document::WorkerPool(pool) => pool.clone(),
        other => panic!("{file} contains a WorkerPool, found {other:?}"),
    }
}

#[tokio::test]
async fn dev_defaults_place_example_pools() {
    let args = Command::try_parse_from(["dev-nomad", "--addr", "127.0.0.1:0", "--speed", "600"])
        .expect("arguments parse")
        .args;
    let config = dev_nomad::config(args).expect("defaults are valid");
    let harness = Harness::start_with(config).await;

    // Each pool at its maximum, split evenly over its two zones.
    for (file, per_zone) in [("face-match.yaml", 12), ("ocr.yaml", 20)] {
        let pool = example_pool(file);
        let job = render_job(&pool, &[per_zone, per_zone]).expect("example renders");
        let path = format!(
            "/v1/job/{}/allocations?namespace={}",
            job.id,
            job.namespace_or_default()
        );
        harness
            .register(serde_json::to_value(&job).expect("job serializes"))
            .await;

        let expected = 2 * per_zone as usize;
        let running = harness
            .eventually(
                &format!("{expected} running allocations of {file}"),
                || async {
                    let allocs: Vec<steward::nomad::AllocListStub> =
                        harness.get(&path).await.parse();
                    let running = allocs
                        .iter()
                        .filter(|alloc| alloc.client_status.as_str() == "running")
                        .count();
                    (running == expected).then_some(running)
                },
            )
            .await;
        assert_eq!(running, expected, "{file}");
    }
    harness.nomad.shutdown().await;
}
