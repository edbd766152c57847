//! Object loading and validation: examples, rejection reasons with their positions, round
//! trips, hostile input and the `steward validate` command.

use std::path::PathBuf;

use steward::spec::{self, Document};

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn examples_are_valid() {
    let documents = spec::load_paths(&[repo_path("examples")])
        .unwrap_or_else(|report| panic!("examples must be valid:\n{report}"));
    assert!(!documents.is_empty(), "examples/ holds no object");
}

#[test]
fn face_match_example_round_trips() {
    let documents = spec::load_paths(&[repo_path("examples/pools/face-match.yaml")])
        .unwrap_or_else(|report| panic!("{report}"));
    let Document::WorkerPool(pool) = &documents[0].document else {
        panic!("face-match.yaml holds a WorkerPool");
    };
    assert_eq!(pool.job_id(), "face-match");
    assert_eq!(pool.job_namespace(), "default");

    let text = spec::to_yaml(&documents[0].document);
    assert!(text.ends_with('\n'));
    let again = spec::parse_str(&text, "round-trip").unwrap_or_else(|r| panic!("{r}\n{text}"));
    assert_eq!(again[0].document, documents[0].document);
}
