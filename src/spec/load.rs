//! Loading objects from files, directories, standard input or text: parse, check against
//! the JSON Schema, deserialize, then run the semantic checks, collecting every error.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::document::{Document, LoadedDocument};
use super::error::{ValidationError, ValidationReport};
use super::parse::{
    MAX_INPUT_BYTES, MAX_STORED_BYTES, ParsedDocument, parse_documents, path_push_index,
    path_push_key, too_large_message,
};
use super::schema;
use super::types::{KIND_OVERRIDE, KIND_WORKER_POOL, Override, WorkerPool};
use super::validate::{validate_document, validate_set_at};

/// The `source` of documents read from standard input.
pub const STDIN_SOURCE: &str = "<stdin>";

/// Loads every object from `paths`: files, directories (every `*.yaml`, `*.yml` and `*.json`
/// below them, recursively, in sorted order) or `-` for standard input.
///
/// Every document of every file is checked, then the set as a whole (two pools that claim one
/// Nomad job, two objects of one kind with one name). Overrides whose `until` has passed are
/// rejected, because loading from files is how they are applied.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<LoadedDocument>, ValidationReport> {
    load_paths_at(paths, Some(jiff::Timestamp::now()))
}

/// Loads like [`load_paths`], with `now` as the time an override's `until` must be after,
/// such as the sped-up clock of `steward dev`. With `None`, an override whose `until` has
/// passed loads too, as `steward delete -f` needs.
pub fn load_paths_at(
    paths: &[PathBuf],
    now: Option<jiff::Timestamp>,
) -> Result<Vec<LoadedDocument>, ValidationReport> {
    let mut inputs: Vec<(String, Result<String, String>)> = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            inputs.push((
                STDIN_SOURCE.to_owned(),
                read_limited(std::io::stdin().lock()),
            ));
            continue;
        }
        if path.is_dir() {
            match list_directory(path) {
                Ok(files) if files.is_empty() => inputs.push((
                    path.display().to_string(),
                    Err("directory contains no *.yaml, *.yml or *.json file".to_owned()),
                )),
                Ok(files) => {
                    for file in files {
                        let text = read_file(&file);
                        inputs.push((file.display().to_string(), text));
                    }
                }
                Err(message) => inputs.push((path.display().to_string(), Err(message))),
            }
            continue;
        }
        inputs.push((path.display().to_string(), read_file(path)));
    }

    let mut errors = Vec::new();
    let mut checked = Vec::new();
    for (source, text) in inputs {
        match text {
            Ok(text) => checked.extend(check_text(&text, &source, now, &mut errors)),
            Err(message) => errors.push(file_error(&source, message)),
        }
    }
    finish(checked, errors)
}

/// Loads every object from `text` (YAML or JSON, one or more `---`-separated documents).
/// `source` names the text in errors. Overrides whose `until` has passed are rejected.
pub fn parse_str(text: &str, source: &str) -> Result<Vec<LoadedDocument>, ValidationReport> {
    let mut errors = Vec::new();
    let checked = check_text(text, source, Some(jiff::Timestamp::now()), &mut errors);
    finish(checked, errors)
}

/// Loads objects read back from storage such as Consul KV. Unlike [`parse_str`], it accepts
/// an override whose `until` has passed, which the caller then reports as expired.
pub fn parse_stored(text: &str, source: &str) -> Result<Vec<LoadedDocument>, ValidationReport> {
    let mut errors = Vec::new();
    let checked = check_text(text, source, None, &mut errors);
    finish(checked, errors)
}

/// A document that passed its own checks, with what is needed to place set-wide errors.
struct Checked {
    loaded: LoadedDocument,
    parsed: ParsedDocument,
}

fn finish(
    checked: Vec<Checked>,
    mut errors: Vec<ValidationError>,
) -> Result<Vec<LoadedDocument>, ValidationReport> {
    let documents: Vec<&Document> = checked.iter().map(|c| &c.loaded.document).collect();
    let locations: Vec<String> = checked.iter().map(location_of).collect();
    for (index, error) in validate_set_at(&documents, &locations) {
        let item = &checked[index];
        errors.push(locate(error, &item.loaded.source, &item.parsed));
    }

    if errors.is_empty() {
        Ok(checked.into_iter().map(|c| c.loaded).collect())
    } else {
        Err(ValidationReport { errors })
    }
}

/// Names where a document's `metadata.name` sits: `FILE:LINE:COL (document N)`, with N
/// counted from 1 within the file.
fn location_of(checked: &Checked) -> String {
    let source = &checked.loaded.source;
    let number = checked.loaded.index + 1;
    match checked.parsed.position_of("metadata.name") {
        Some(position) => format!(
            "{source}:{}:{} (document {number})",
            position.line, position.column
        ),
        None => format!("{source} (document {number})"),
    }
}

/// Checks every document of one text, pushing errors to `errors` and returning the documents
/// that passed.
fn check_text(
    text: &str,
    source: &str,
    now: Option<jiff::Timestamp>,
    errors: &mut Vec<ValidationError>,
) -> Vec<Checked> {
    let documents = match parse_documents(text) {
        Ok(documents) => documents,
        Err(syntax) => {
            errors.push(ValidationError {
                source: source.to_owned(),
                line: syntax.position.map(|p| p.line),
                column: syntax.position.map(|p| p.column),
                path: String::new(),
                message: syntax.message,
            });
            return Vec::new();
        }
    };
    if documents.is_empty() {
        errors.push(file_error(
            source,
            "contains no document: write a WorkerPool or Override object".to_owned(),
        ));
        return Vec::new();
    }

    let mut checked = Vec::new();
    for (index, parsed) in documents.into_iter().enumerate() {
        let before = errors.len();
        let document = check_document(&parsed, source, now, errors);
        if let Some(document) = document
            && errors.len() == before
        {
            checked.push(Checked {
                loaded: LoadedDocument {
                    source: source.to_owned(),
                    index,
                    document,
                },
                parsed,
            });
        }
    }
    checked
}

/// Checks one document and returns it typed when it could be deserialized (it may still
/// have errors, which are pushed to `errors`).
fn check_document(
    parsed: &ParsedDocument,
    source: &str,
    now: Option<jiff::Timestamp>,
    errors: &mut Vec<ValidationError>,
) -> Option<Document> {
    let value = &parsed.value;
    if !value.is_object() {
        errors.push(locate(
            ValidationError::new(
                "",
                format!(
                    "expected an object with apiVersion, kind, metadata and spec, found {}",
                    schema::describe_value(Some(value))
                ),
            ),
            source,
            parsed,
        ));
        return None;
    }

    let kind = match value.get("kind") {
        Some(Value::String(kind)) if kind == KIND_WORKER_POOL || kind == KIND_OVERRIDE => {
            kind.as_str()
        }
        found => {
            let message = match found {
                None => format!(
                    "missing required field `kind`: set it to `{KIND_WORKER_POOL}` or \
                     `{KIND_OVERRIDE}`"
                ),
                Some(found) => format!(
                    "must be `{KIND_WORKER_POOL}` or `{KIND_OVERRIDE}`, found {}",
                    schema::describe_value(Some(found))
                ),
            };
            errors.push(locate(
                ValidationError::new("kind", message),
                source,
                parsed,
            ));
            return None;
        }
    };

    // Schema violations come first. A semantic error on a field that already has one is left
    // out, because it would describe the same mistake twice.
    let violations = schema::check(kind, value);
    let mut reported: Vec<String> = Vec::new();
    let mut cleaned = value.clone();
    let mut document_errors = Vec::new();
    for violation in violations {
        if let Some(pointer) = &violation.unknown_field {
            remove_pointer(&mut cleaned, pointer);
        }
        reported.push(violation.path.clone());
        document_errors.push(locate(
            ValidationError::new(violation.path, violation.message),
            source,
            parsed,
        ));
    }

    // Unknown fields are dropped before deserializing, so that a typo does not hide the
    // semantic errors in the rest of the document.
    let document = match kind {
        KIND_WORKER_POOL => deserialize::<WorkerPool>(cleaned).map(Document::WorkerPool),
        _ => deserialize::<Override>(cleaned).map(Document::Override),
    };
    let document = match document {
        Ok(document) => Some(document),
        Err(error) => {
            // The schema normally catches the problem first, so this error is reported only
            // when the schema found nothing on the same field, its parents or its children
            // (serde names the parent object of a missing field).
            let related = |a: &str, b: &str| {
                a == b || a.starts_with(&format!("{b}.")) || a.starts_with(&format!("{b}["))
            };
            let duplicate = reported
                .iter()
                .any(|path| related(&error.path, path) || related(path, &error.path));
            if !duplicate {
                document_errors.push(locate(error, source, parsed));
            }
            None
        }
    };

    if let Some(document) = &document
        && let Some(problem) = stored_size_problem(document)
    {
        document_errors.push(locate(ValidationError::new("", problem), source, parsed));
    }

    // NOTE: semantic checks need the typed object, so a document with a schema error other
    // than an unknown field (a wrong type, a missing field) reports only its schema errors.
    // Its semantic errors show up on the next run, once the schema errors are fixed.
    if let Some(document) = &document {
        for error in validate_document(document, now) {
            let duplicate = reported
                .iter()
                .any(|path| error.path == *path || error.path.starts_with(&format!("{path}.")));
            if !duplicate {
                document_errors.push(locate(error, source, parsed));
            }
        }
    }

    document_errors.sort_by_key(|e| (e.line, e.column));
    errors.extend(document_errors);
    document
}

/// Deserializes a typed object, returning the first error with its field path and a message
/// in the words of the object format rather than Rust's type names.
fn deserialize<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ValidationError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut path = String::new();
        for segment in error.path().iter() {
            path = match segment {
                serde_path_to_error::Segment::Seq { index } => path_push_index(&path, *index),
                serde_path_to_error::Segment::Map { key } => path_push_key(&path, key),
                serde_path_to_error::Segment::Enum { variant } => path_push_key(&path, variant),
                serde_path_to_error::Segment::Unknown => path,
            };
        }
        let message = error.into_inner().to_string();

        // serde names the object that lacks a field, while the schema names the field itself.
        // Naming the field too lets the caller see that both report the same mistake.
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return ValidationError::new(
                path_push_key(&path, field),
                format!("missing required field `{field}`"),
            );
        }
        ValidationError::new(path, plain_message(&message))
    })
}

/// Rewrites serde's messages about numbers, such as "invalid type: floating point `3.0`,
/// expected u32", into the words of the object format: "expected a whole number, found 3.0".
fn plain_message(message: &str) -> String {
    let expected = message.rsplit_once(", expected ").map(|(found, expected)| {
        let expected = match expected.trim() {
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of at least 0",
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
            "f32" | "f64" => "a number",
            other => other,
        };
        (found, expected)
    });
    let Some((found, expected)) = expected else {
        return message.to_owned();
    };
    let found = found
        .trim_start_matches("invalid type: ")
        .trim_start_matches("invalid value: ")
        .replace("floating point ", "")
        .replace("integer ", "")
        .replace('`', "");
    format!("expected {expected}, found {found}")
}

/// Returns why `document` cannot be stored when its YAML, as `steward apply` writes it, is
/// larger than [`MAX_STORED_BYTES`].
pub fn stored_size_problem(document: &Document) -> Option<String> {
    let size = super::document::to_yaml(document).len();
    (size > MAX_STORED_BYTES).then(|| {
        format!(
            "the {} is {size} bytes as stored YAML, above the limit of {MAX_STORED_BYTES} \
             bytes: Consul stores at most 512 KiB per value and per transaction, and a \
             transaction carries values in base64, which adds a third; shrink the object, \
             for example by moving large Meta or Env values elsewhere",
            document.kind()
        )
    })
}

/// Removes the field at a JSON pointer, if present.
fn remove_pointer(value: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(&key);
    }
}
/// Adds the source and the line and column of the error's path.
fn locate(mut error: ValidationError, source: &str, parsed: &ParsedDocument) -> ValidationError {
    error.source = source.to_owned();
    if let Some(position) = parsed.position_of(&error.path) {
        error.line = Some(position.line);
        error.column = Some(position.column);
    }
    error
}

fn file_error(source: &str, message: String) -> ValidationError {
    ValidationError {
        source: source.to_owned(),
        line: None,
        column: None,
        path: String::new(),
        message,
    }
}

/// Reads a file, rejecting it before reading when it exceeds [`MAX_INPUT_BYTES`].
fn read_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read file: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read file: {e}"))?
        .len();
    if len > MAX_INPUT_BYTES as u64 {
        return Err(too_large_message(
            usize::try_from(len).unwrap_or(usize::MAX),
        ));
    }
    read_limited(file)
}

/// Reads at most [`MAX_INPUT_BYTES`] + 1 bytes, so an endless stream cannot fill memory.
fn read_limited(reader: impl Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read input: {e}"))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(too_large_message(bytes.len()));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "input is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Lists the `*.yaml`, `*.yml` and `*.json` files below `dir`, sorted by path.
fn list_directory(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| format!("cannot read directory {}: {e}", current.display()))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| format!("cannot read directory {}: {e}", current.display()))?;
            let path = entry.path();
            let file_type = entry
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if file_type.is_dir() {
                pending.push(path);
            } else if has_object_extension(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn has_object_extension(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}
