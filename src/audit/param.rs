//! The filter parameters (CONTRACT.md, "Filters"): the one list that the
//! query string's parser, the page's form and its errors, the export, the API
//! and the CLI's flags all take their names from. A new filter starts here.

use std::borrow::Cow;
use std::fmt;

use super::Action;

/// One filter parameter of the page, the export, the API and `auditdesk export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    ResourceType,
    Action,
    ResourceTarget,
    User,
    ResourceId,
    RequestId,
    Status,
    From,
    To,
    Q,
    Search,
    Limit,
    Cursor,
}

impl Param {
    /// Every parameter, in the order of CONTRACT.md.
    pub const ALL: [Param; 13] = [
        Param::ResourceType,
        Param::Action,
        Param::ResourceTarget,
        Param::User,
        Param::ResourceId,
        Param::RequestId,
        Param::Status,
        Param::From,
        Param::To,
        Param::Q,
        Param::Search,
        Param::Limit,
        Param::Cursor,
    ];

    /// The filters proper, without paging (the last two of [`Param::ALL`]):
    /// what an export, and the CLI's flags, take.
    pub const FILTERS: &'static [Param] = Param::ALL.as_slice().split_at(11).0;

    /// The name as the query string spells it.
    pub fn name(self) -> &'static str {
        match self {
            Param::ResourceType => "resource_type",
            Param::Action => "action",
            Param::ResourceTarget => "resource_target",
            Param::User => "user",
            Param::ResourceId => "resource_id",
            Param::RequestId => "request_id",
            Param::Status => "status",
            Param::From => "from",
            Param::To => "to",
            Param::Q => "q",
            Param::Search => "search",
            Param::Limit => "limit",
            Param::Cursor => "cursor",
        }
    }

    /// The filters that are keys of the search bar's `key:value` terms, in the
    /// order CONTRACT.md lists them ("Free text and the search bar").
    pub const SEARCH_KEYS: [Param; 9] = [
        Param::Action,
        Param::ResourceType,
        Param::ResourceTarget,
        Param::User,
        Param::ResourceId,
        Param::RequestId,
        Param::Status,
        Param::From,
        Param::To,
    ];

    /// The name of its search bar key (`target` for the resource target), if
    /// it is one.
    pub fn search_key(self) -> Option<&'static str> {
        match self {
            Param::ResourceTarget => Some("target"),
            Param::Q | Param::Search | Param::Limit | Param::Cursor => None,
            other => Some(other.name()),
        }
    }

    /// The parameter whose search bar key is `name`, ignoring ASCII case;
    /// `resource_target` (the query string's name) is `target` too.
    pub fn from_search_key(name: &str) -> Option<Param> {
        let name = name.to_ascii_lowercase();
        if name == Param::ResourceTarget.name() {
            return Some(Param::ResourceTarget);
        }
        Param::SEARCH_KEYS
            .into_iter()
            .find(|k| k.search_key() == Some(name.as_str()))
    }

    /// The parameter the query string calls `name`.
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The CLI's flag, without its `--`: the name with `-` for `_`.
    pub fn flag(self) -> &'static str {
        match self {
            Param::ResourceType => "resource-type",
            Param::ResourceTarget => "resource-target",
            Param::ResourceId => "resource-id",
            Param::RequestId => "request-id",
            other => other.name(),
        }
    }

    /// Whether the value is matched exactly against stored text, as given,
    /// spaces and control characters included (so every stored value can be
    /// asked for), rather than trimmed and parsed (an action, a date, a number).
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            Param::ResourceType
                | Param::ResourceTarget
                | Param::User
                | Param::ResourceId
                | Param::RequestId
        )
    }

    /// What the value is, for the CLI's help.
    pub fn help(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Param::ResourceType => "Resource type, exactly (workspace, template, ...)",
            Param::Action => {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                return Cow::Owned(format!("One of {}", names.join(", ")));
            }
            Param::ResourceTarget => "Resource target (its name), exactly",
            Param::User => "Username of the actor, exactly",
            Param::ResourceId => "Resource ID, exactly",
            Param::RequestId => "Request ID, exactly",
            Param::Status => "success (below 400) or failure (400 and above)",
            Param::From => "Inclusive: a date (2026-03-01, UTC) or an RFC 3339 time",
            Param::To => "Exclusive: a date (2026-03-01, UTC) or an RFC 3339 time",
            Param::Q => "Free text, found in the target, user, email, ids and diff",
            Param::Search => {
                "The search bar: key:value terms (action, resource_type, target, user, \
                 resource_id, request_id, status, from, to), -key:value to exclude, \
                 words and \"quoted phrases\" as free text"
            }
            Param::Limit => "Events per page, 1 to 500",
            Param::Cursor => "A page's position, from its Older/Newer links",
        })
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Param;

    #[test]
    fn names_flags_and_lists_agree() {
        for p in Param::ALL {
            assert_eq!(Param::from_name(p.name()), Some(p));
            assert_eq!(p.flag(), p.name().replace('_', "-"));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Param::from_name("format"), None);
        assert!(
            Param::FILTERS
                .iter()
                .all(|p| Param::ALL.contains(p) && !matches!(p, Param::Limit | Param::Cursor))
        );
        assert_eq!(Param::FILTERS.len() + 2, Param::ALL.len());
        // The search bar's keys are the filters that have one, each once.
        let mut keyed: Vec<Param> = Param::FILTERS
            .iter()
            .copied()
            .filter(|p| p.search_key().is_some())
            .collect();
        let mut listed = Param::SEARCH_KEYS.to_vec();
        keyed.sort_by_key(|p| p.name());
        listed.sort_by_key(|p| p.name());
        assert_eq!(keyed, listed);
    }
}
