//! A parsed object of either kind, and helpers on the object types.

use super::types::{
    API_VERSION, KIND_OVERRIDE, KIND_WORKER_POOL, ObjectMeta, Override, OverrideSpec, WorkerPool,
};

/// The Nomad namespace of a pool whose `spec.job.namespace` is unset.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One declared object.
#[allow(
    clippy::large_enum_variant,
    reason = "callers match on `Document::WorkerPool(pool)` by value; documents are few and short-lived"
)]
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    WorkerPool(WorkerPool),
    Override(Override),
}

impl Document {
    /// Returns `metadata.name` (for an override, the name of its pool).
    pub fn name(&self) -> &str {
        match self {
            Self::WorkerPool(pool) => &pool.metadata.name,
            Self::Override(item) => &item.metadata.name,
        }
    }

    /// Returns the kind: `WorkerPool` or `Override`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::WorkerPool(_) => KIND_WORKER_POOL,
            Self::Override(_) => KIND_OVERRIDE,
        }
    }
}

/// A document read from a file or from standard input.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedDocument {
    /// The file path, or `<stdin>`.
    pub source: String,
    /// 0-based number of the document in its file, counting only non-empty documents.
    pub index: usize,
    pub document: Document,
}

impl WorkerPool {
    /// Returns the Nomad job ID: `spec.job.id`, or the pool's name when unset.
    pub fn job_id(&self) -> &str {
        self.spec.job.id.as_deref().unwrap_or(&self.metadata.name)
    }

    /// Returns the Nomad namespace: `spec.job.namespace`, or `default` when unset.
    pub fn job_namespace(&self) -> &str {
        self.spec
            .job
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// Serializes the pool as YAML that [`super::parse_str`] reads back to an equal value.
    pub fn to_yaml(&self) -> String {
        to_yaml_text(self)
    }
}

impl Override {
    /// Builds an override of the pool `pool` with `apiVersion` and `kind` filled in.
    pub fn new(pool: impl Into<String>, spec: OverrideSpec) -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND_OVERRIDE.to_owned(),
            metadata: ObjectMeta {
                name: pool.into(),
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    /// Returns true while `now` is before `spec.until`.
    pub fn is_active(&self, now: jiff::Timestamp) -> bool {
        now < self.spec.until
    }

    /// Serializes the override as YAML that [`super::parse_str`] reads back to an equal value.
    pub fn to_yaml(&self) -> String {
        to_yaml_text(self)
    }
}

/// Serializes a document as readable YAML, ending with a newline.
pub fn to_yaml(document: &Document) -> String {
    match document {
        Document::WorkerPool(pool) => pool.to_yaml(),
        Document::Override(item) => item.to_yaml(),
    }
}

fn to_yaml_text<T: serde::Serialize>(value: &T) -> String {
    // Template durations print as `10m` rather than nanoseconds; they read back the same.
    let mut text = crate::nomad::with_readable_durations(|| serde_saphyr::to_string(value))
        .expect("the object types serialize to YAML: string keys and finite numbers only");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_stored;

    #[test]
    fn ambiguous_strings_round_trip() {
        let mut item = Override::new(
            "face-match",
            OverrideSpec {
                workers: 3,
                reason: "true".to_owned(),
                until: "2026-12-05T18:00:00Z".parse().expect("valid timestamp"),
                by: Some("1.0".to_owned()),
                force: false,
            },
        );
        for text in [
            "null", "0755", "yes", "~", "1e3", "0x1F", "", " padded ", "a: b", "#x",
        ] {
            item.metadata
                .labels
                .insert(format!("k{}", text.len()), text.to_owned());
            item.metadata
                .annotations
                .insert("note".to_owned(), text.to_owned());
            let yaml = item.to_yaml();
            let loaded = parse_stored(&yaml, "test").unwrap_or_else(|r| panic!("{r}\n{yaml}"));
            assert_eq!(
                loaded[0].document,
                Document::Override(item.clone()),
                "{yaml}"
            );
        }
    }
}
