use std::fmt;

/// Why a policy document was refused. Services map `Malformed` to
/// `MalformedPolicyDocument` and `TooLarge` to `LimitExceeded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyErrorKind {
    Malformed,
    TooLarge,
}

/// A refused policy document: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub kind: PolicyErrorKind,
    /// AWS-style headline, e.g. "Syntax errors in policy." or "Unknown field Foo".
    pub message: String,
    /// The JSON parser's explanation for syntax errors.
    pub detail: Option<String>,
    /// JSON path of the element at fault, e.g. `Statement[1].Condition`; empty for the document.
    pub path: String,
    /// 1-based position where the parser stopped; 0 when not known.
    pub line: usize,
    pub column: usize,
}

impl PolicyError {
    pub(crate) fn too_large(limit: usize) -> Self {
        PolicyError {
            kind: PolicyErrorKind::TooLarge,
            message: format!("Cannot exceed quota for PolicySize: {limit}"),
            detail: None,
            path: String::new(),
            line: 0,
            column: 0,
        }
    }

    pub(crate) fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let (line, column) = (inner.line(), inner.column());
        let text = inner.to_string();
        // serde_json appends the position to every message; it is kept separately here.
        let suffix = format!(" at line {line} column {column}");
        let text = text.strip_suffix(&suffix).map(str::to_string).unwrap_or(text);
        let (message, detail) = match inner.classify() {
            serde_json::error::Category::Data => (text, None),
            _ => ("Syntax errors in policy.".to_string(), Some(text)),
        };
        PolicyError {
            kind: PolicyErrorKind::Malformed,
            message,
            detail,
            path: if path == "." { String::new() } else { path },
            line,
            column,
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        match (self.path.is_empty(), self.line) {
            (true, 0) => Ok(()),
            (true, line) => write!(f, " at line {line} column {}", self.column),
            (false, 0) => write!(f, " at {}", self.path),
            (false, line) => write!(f, " at {} (line {line} column {})", self.path, self.column),
        }
    }
}

impl std::error::Error for PolicyError {}
