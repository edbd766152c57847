//! Validation errors: every problem found in the input, each with its file, position and
//! field path.

use std::fmt;

/// One problem in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The file path, `<stdin>`, or another label for where the text came from (for example a
    /// Consul key).
    pub source: String,
    /// 1-based line of the offending field, when the text was parsed from YAML or JSON.
    pub line: Option<usize>,
    /// 1-based column of the offending field, when known.
    pub column: Option<usize>,
    /// Dotted field path such as `spec.workers.min` or `spec.zones[1].datacenter`, or empty
    /// for the document as a whole.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ValidationError {
    /// Builds an error without a position, for objects that were not parsed from text.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source: String::new(),
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    /// Formats the error as `FILE:LINE:COL: spec.path: message`, leaving out the parts that
    /// are unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.source.is_empty() {
            write!(f, "{}:", self.source)?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            f.write_str(" ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every error found in an input, in the order of the input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub errors: Vec<ValidationError>,
}

impl ValidationReport {
    /// Returns true when no error was found.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl From<Vec<ValidationError>> for ValidationReport {
    fn from(errors: Vec<ValidationError>) -> Self {
        Self { errors }
    }
}

impl fmt::Display for ValidationReport {
    /// Formats one error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationReport {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_has_file_line_column_path() {
        let error = ValidationError {
            source: "pools/a.yaml".into(),
            line: Some(7),
            column: Some(5),
            path: "spec.workers.min".into(),
            message: "must be at most spec.workers.max (3), found 5".into(),
        };
        assert_eq!(
            error.to_string(),
            "pools/a.yaml:7:5: spec.workers.min: must be at most spec.workers.max (3), found 5"
        );
    }

    #[test]
    fn error_display_without_position() {
        let error = ValidationError::new("spec.reason", "missing");
        assert_eq!(error.to_string(), "spec.reason: missing");
    }
}
