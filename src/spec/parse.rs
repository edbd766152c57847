//! YAML or JSON text to `serde_json::Value` documents, with the position of every field.
//!
//! JSON is parsed by the same YAML parser (JSON is a subset of YAML 1.2), so both kinds of
//! input carry line and column numbers. Every node is read through
//! [`serde_saphyr::Spanned`], which records where it sits in the text.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;

/// Maximum input size, in bytes. A Consul KV value cannot exceed 512 KiB, so a pool
/// file beyond this size is a mistake or an attack.
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;

/// Consul's default limit on a KV value and on a `/v1/txn` request body (`kv_max_value_size`
/// and `txn_max_req_len`, both 512 KiB by default in Consul 1.x).
pub const CONSUL_MAX_BODY_BYTES: usize = 512 * 1024;

/// Maximum size of one object's stored YAML. `steward apply` writes through `/v1/txn`, whose
/// JSON body carries each value in base64 (4 bytes per 3), so a value of this size takes
/// 518,828 bytes there and leaves about 5 KiB of the 512 KiB body for the key and the rest
/// of the operation.
pub const MAX_STORED_BYTES: usize = 380 * 1024;

/// Maximum nesting depth of mappings and sequences. The deepest modeled field of a pool (a
/// check header of a task's service in the template) sits about a dozen levels down, and
/// free-form driver configuration gets the rest.
pub const MAX_DEPTH: usize = 48;

/// Maximum number of YAML nodes in one input, counting every node an alias expands to. It stops
/// alias bombs ("billion laughs") long before they use much memory.
pub const MAX_NODES: usize = 200_000;

/// Maximum number of YAML documents in one input.
pub const MAX_DOCUMENTS: usize = 1_000;

/// 1-based line and column of a field in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub line: usize,
    pub column: usize,
}

/// One parsed document: its value and where each field sits, keyed by dotted path
/// (see [`path_push_key`]).
#[derive(Debug, Clone)]
pub(crate) struct ParsedDocument {
    pub value: Value,
    pub positions: HashMap<String, Position>,
}

impl ParsedDocument {
    /// Returns the position of `path`, or of its nearest ancestor that has one (a missing
    /// field is reported where its parent is).
    pub(crate) fn position_of(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(position) = self.positions.get(current) {
                return Some(*position);
            }
            if current.is_empty() {
                return None;
            }
            current = path_parent(current);
        }
    }
}

/// A syntax error or an exceeded limit, which rejects the input as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub position: Option<Position>,
    pub message: String,
}

/// Parses every document of `text`. Empty documents (only comments or nothing between two
/// `---`) are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<ParsedDocument>, SyntaxError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(SyntaxError {
            position: None,
            message: too_large_message(text.len()),
        });
    }

    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES;
    budget.max_reader_input_bytes = Some(MAX_INPUT_BYTES);
    options.budget = Some(budget);
    // YAML 1.2 core schema: `yes`, `no`, `on`, `off` and `y` stay strings, so a Meta value
    // such as `on` is not silently turned into a boolean.
    options.strict_booleans = true;
    // Keep `0755` a string instead of reading it as the number 755.
    options.leading_zero_numbers_as_strings = true;
    // The caller prints its own position, so serde-saphyr's source snippet is not needed.
    options.with_snippet = false;

    let nodes: Vec<Option<Spanned<Node>>> =
        serde_saphyr::from_str_multiple_with_options(text, options).map_err(|error| {
            SyntaxError {
                position: error.location().map(position_of_location),
                message: syntax_message(&error),
            }
        })?;

    let mut documents = Vec::with_capacity(nodes.len());
    for node in nodes.into_iter().flatten() {
        let mut positions = HashMap::new();
        positions.insert(String::new(), position_of_location(node.referenced));
        let value = into_value(node.value, "", &mut positions);
        documents.extend(split_list(ParsedDocument { value, positions }));
    }
    Ok(documents)
}

/// Splits a document that is a list of objects, such as the JSON array `steward get -o json`
/// prints, into one document per object, each with its own positions. Any other document is
/// returned as it is.
fn split_list(document: ParsedDocument) -> Vec<ParsedDocument> {
    let ParsedDocument { value, positions } = document;
    let items = match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => items,
        value => return vec![ParsedDocument { value, positions }],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let prefix = path_push_index("", index);
            let positions = positions
                .iter()
                .filter_map(|(path, position)| {
                    let rest = path.strip_prefix(&prefix)?;
                    let rest = match rest.strip_prefix('.') {
                        Some(key) => key,
                        None if rest.is_empty() || rest.starts_with('[') => rest,
                        None => return None,
                    };
                    Some((rest.to_owned(), *position))
                })
                .collect();
            ParsedDocument { value, positions }
        })
        .collect()
}

/// Returns the error message for an input over [`MAX_INPUT_BYTES`].
pub(crate) fn too_large_message(len: usize) -> String {
    format!(
        "input is {len} bytes, more than the limit of {MAX_INPUT_BYTES} bytes (4 MiB); a Consul \
         KV value cannot exceed 512 KiB, so split the file into one file per pool"
    )
}

/// Describes a parse failure without serde-saphyr's own position prefix and source snippet,
/// because the caller prints the position itself.
fn syntax_message(error: &serde_saphyr::Error) -> String {
    // The budget error may be wrapped with alias locations or a source snippet.
    let mut inner = error;
    loop {
        match inner {
            serde_saphyr::Error::Budget { breach, .. } => return budget_message(breach),
            serde_saphyr::Error::AliasError { error, .. }
            | serde_saphyr::Error::WithSnippet { error, .. } => inner = error,
            _ => break,
        }
    }
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default().trim();
    if first.contains("recursion limit exceeded") {
        return depth_message();
    }
    let detail = strip_position(first);
    if let Some(message) = steward_message(detail) {
        return message;
    }
    format!("invalid YAML or JSON: {detail}")
}

/// Rewrites serde-saphyr 2.2 messages that name its own options into
/// what is wrong in the input and how to fix it. Returns `None` for other messages.
fn steward_message(detail: &str) -> Option<String> {
    if let Some(rest) = detail.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return Some(format!(
            "duplicate key `{key}`: a key may appear only once in a mapping; remove or merge \
             the repeated one"
        ));
    }
    if detail.starts_with("non-finite float") {
        let value = detail.split('`').nth(1).unwrap_or("a non-finite number");
        return Some(format!(
            "{value} is not a finite number; write a number such as 1.5"
        ));
    }
    if detail.contains("recursive references") {
        return Some(
            "an alias refers to the node that contains it, which would repeat forever; write \
             the values out instead"
                .to_owned(),
        );
    }
    None
}

fn depth_message() -> String {
    format!(
        "input nests mappings or sequences deeper than {MAX_DEPTH} levels; no valid object \
         needs that many"
    )
}

/// Describes an exceeded parser limit and why the limit exists.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;

    match breach {
        BudgetBreach::Nodes { .. } => format!(
            "input expands to more than {MAX_NODES} YAML nodes (aliases count once per use); \
             rejected to bound memory, as an alias bomb would exceed it. Write the values out \
             or use fewer aliases"
        ),
        BudgetBreach::Depth { .. } => depth_message(),
        BudgetBreach::Documents { .. } => {
            format!(
                "input contains more than {MAX_DOCUMENTS} documents; split it into several files"
            )
        }
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => {
            too_large_message(MAX_INPUT_BYTES + 1)
        }
        BudgetBreach::Aliases { .. } | BudgetBreach::AliasAnchorRatio { .. } => {
            "input uses too many aliases for its anchors, the shape of an alias bomb; write \
             the values out or use fewer aliases"
                .to_owned()
        }
        other => format!("input exceeds a parser limit ({other:?}); simplify the document"),
    }
}

/// Strips serde-saphyr's `error:` and `line L column C:` prefixes and its trailing
/// `at line L, column C`, if present.
fn strip_position(text: &str) -> &str {
    let mut rest = text.strip_prefix("error: ").unwrap_or(text);
    for prefix in ["line ", "at line "] {
        if rest.starts_with(prefix)
            && let Some(index) = rest.find(": ")
        {
            rest = &rest[index + 2..];
            break;
        }
    }
    if let Some(index) = rest.rfind(" at line ")
        && rest[index..].contains(", column ")
    {
        rest = &rest[..index];
    }
    rest
}

fn position_of_location(location: serde_saphyr::Location) -> Position {
    Position {
        line: usize::try_from(location.line()).unwrap_or(usize::MAX),
        column: usize::try_from(location.column()).unwrap_or(usize::MAX),
    }
}

/// Appends a mapping key to a dotted path: `spec` + `workers` = `spec.workers`. Keys that are
/// not plain identifiers (such as the label `app.kubernetes.io/name`) are quoted:
/// `metadata.labels["app.kubernetes.io/name"]`.
pub(crate) fn path_push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!("{path}[{key:?}]"),
    }
}

/// Appends a sequence index to a dotted path: `spec.zones` + 1 = `spec.zones[1]`.
pub(crate) fn path_push_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// Returns the parent of a dotted path (`spec.zones[1].name` → `spec.zones[1]` →
/// `spec.zones` → `spec` → ``).
pub(crate) fn path_parent(path: &str) -> &str {
    if path.ends_with(']') {
        // A quoted key may contain `[`, so look for the `[` that opens the last segment: the
        // last `["` for a quoted key, otherwise the last `[`.
        let open = if path.ends_with("\"]") {
            path.rfind("[\"")
        } else {
            path.rfind('[')
        };
        if let Some(open) = open {
            return &path[..open];
        }
    }
    match path.rfind('.') {
        Some(dot) => &path[..dot],
        None => "",
    }
}

/// Converts a JSON pointer such as `/spec/zones/1/name` into a dotted path, reading each
/// segment against `value` to tell sequence indices from mapping keys.
pub(crate) fn pointer_to_path(pointer: &str, value: &Value) -> String {
    let mut path = String::new();
    let mut current = Some(value);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match current {
            Some(Value::Array(items)) => {
                let index = segment.parse::<usize>().ok();
                path = match index {
                    Some(index) => path_push_index(&path, index),
                    None => path_push_key(&path, &segment),
                };
                current = index.and_then(|index| items.get(index));
            }
            Some(Value::Object(map)) => {
                path = path_push_key(&path, &segment);
                current = map.get(&segment);
            }
            _ => {
                path = path_push_key(&path, &segment);
                current = None;
            }
        }
    }
    path
}

fn into_value(node: Node, path: &str, positions: &mut HashMap<String, Position>) -> Value {
    match node {
        Node::Null => Value::Null,
        Node::Bool(value) => Value::Bool(value),
        Node::Number(value) => Value::Number(value),
        Node::String(value) => Value::String(value),
        Node::Seq(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                let item_path = path_push_index(path, index);
                positions.insert(item_path.clone(), position_of_location(item.referenced));
                values.push(into_value(item.value, &item_path, positions));
            }
            Value::Array(values)
        }
        Node::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (key, value) in entries {
                let key_path = path_push_key(path, &key.value);
                positions.insert(key_path.clone(), position_of_location(key.referenced));
                let value = into_value(value.value, &key_path, positions);
                map.insert(key.value, value);
            }
            Value::Object(map)
        }
    }
}

/// A YAML node whose children keep their positions.
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node, E> {
        Ok(Node::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node, E> {
        Ok(Node::Number(value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Node, E> {
        i64::try_from(value)
            .map(|value| Node::Number(value.into()))
            .map_err(|_| E::custom(format!("integer {value} is out of range")))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Node, E> {
        u64::try_from(value)
            .map(|value| Node::Number(value.into()))
            .map_err(|_| E::custom(format!("integer {value} is out of range")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        Number::from_f64(value)
            .map(Node::Number)
            .ok_or_else(|| E::custom(format!("{value} is not a finite number")))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        Ok(Node::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Node, E> {
        Ok(Node::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "a:\n  b: 1\n  c:\n    - x\n    - y\n";
        let documents = parse_documents(text).expect("valid YAML");
        assert_eq!(documents.len(), 1);
        let document = &documents[0];
        assert_eq!(
            document.positions.get("a.b"),
            Some(&Position { line: 2, column: 3 })
        );
        assert_eq!(
            document.positions.get("a.c[1]"),
            Some(&Position { line: 5, column: 7 })
        );
        assert_eq!(document.value["a"]["c"][1], "y");
    }

    #[test]
    fn several_documents_and_json() {
        let text = "a: 1\n---\n{\"b\": [true, null, 2.5]}\n";
        let documents = parse_documents(text).expect("valid input");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[1].value["b"][0], true);
        assert!(documents[1].value["b"][1].is_null());
        assert_eq!(documents[1].value["b"][2], 2.5);
        assert_eq!(
            documents[1].positions.get("b"),
            Some(&Position { line: 3, column: 2 })
        );
    }

    #[test]
    fn list_of_objects_splits_into_documents() {
        let text = "[\n  {\"a\": {\"b\": 1}},\n  {\"c\": [2]}\n]\n";
        let documents = parse_documents(text).expect("valid JSON");
        assert_eq!(documents.len(), 2);
        assert_eq!(documents[0].value["a"]["b"], 1);
        assert_eq!(documents[1].value["c"][0], 2);
        assert_eq!(
            documents[0].positions.get("a.b"),
            Some(&Position {
                line: 2,
                column: 10
            })
        );
        assert_eq!(
            documents[1].positions.get("c[0]"),
            Some(&Position {
                line: 3,
                column: 10
            })
        );
        assert!(!documents[1].positions.contains_key("a.b"));

        // A list that is not all objects stays one document, for the caller to reject.
        let mixed = parse_documents("[{\"a\": 1}, 2]\n").expect("valid JSON");
        assert_eq!(mixed.len(), 1);
        assert!(mixed[0].value.is_array());
    }

    #[test]
    fn library_messages_are_reworded() {
        let cases = [
            ("a: 1\na: 2\n", "duplicate key `a`"),
            ("a: .inf\n", ".inf is not a finite number"),
            ("a: .nan\n", ".nan is not a finite number"),
            (
                "a: &x\n  b: *x\n",
                "an alias refers to the node that contains it",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_documents(text).expect_err("invalid input");
            assert!(
                error.message.contains(expected),
                "{text:?}: {}",
                error.message
            );
            for internal in ["DuplicateKeyPolicy", "policy", "weak recursion"] {
                assert!(!error.message.contains(internal), "{}", error.message);
            }
        }
    }

    #[test]
    fn parent_of_paths() {
        assert_eq!(path_parent("spec.zones[1].name"), "spec.zones[1]");
        assert_eq!(path_parent("spec.zones[1]"), "spec.zones");
        assert_eq!(path_parent("spec"), "");
        assert_eq!(path_parent("metadata.labels[\"a.b/c\"]"), "metadata.labels");
    }

    #[test]
    fn pointer_becomes_dotted_path() {
        let value = serde_json::json!({"spec": {"zones": [{"name": "a"}], "x": {"0": 1}}});
        assert_eq!(
            pointer_to_path("/spec/zones/0/name", &value),
            "spec.zones[0].name"
        );
        assert_eq!(pointer_to_path("/spec/x/0", &value), "spec.x.0");
    }
}
