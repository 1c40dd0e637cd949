//! Stored text as a page shows it: visible markers for what would be hidden
//! or reorder its row (see `audit::visible`), isolated from its neighbours by
//! the templates' `<bdi>`, with the exact value kept beside it for the title
//! and the copy button.

use crate::audit::visible::{self, Segment};

/// A stored value ready for a template (`{% call shown::text(v) %}`).
pub struct Shown {
    /// What is drawn, when it differs from `exact`: text and markers (empty
    /// when the value draws as it is).
    pub parts: Vec<Segment>,
    /// The value exactly as stored.
    pub exact: String,
    /// Whether what is drawn differs from the exact value (a copy button is offered).
    pub altered: bool,
}

impl From<&String> for Shown {
    fn from(value: &String) -> Self {
        Self::new(value.as_str())
    }
}

impl Shown {
    pub fn new(value: impl Into<String>) -> Self {
        let exact = value.into();
        // Most values draw as they are: no segments to build then (the page
        // shows `exact`), which keeps a page of 500 rows as cheap as before.
        if !visible::needs_markers(&exact) {
            return Self {
                parts: Vec::new(),
                exact,
                altered: false,
            };
        }
        let parts = visible::segments(&exact);
        let altered = parts.iter().any(|p| p.marker);
        Self {
            parts,
            exact,
            altered,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// The drawn text as one string, markers inline (for an `<option>`,
    /// which holds no markup).
    pub fn plain(&self) -> String {
        if self.parts.is_empty() {
            return self.exact.clone();
        }
        self.parts.iter().map(|p| p.text.as_str()).collect()
    }

    /// The exact value as a JSON string, for the copy button: JSON keeps a CR
    /// that an HTML attribute would turn into LF.
    pub fn exact_json(&self) -> String {
        serde_json::Value::String(self.exact.clone()).to_string()
    }
}
