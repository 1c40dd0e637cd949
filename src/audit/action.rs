//! The actions an event can record: the seed's fourteen, in their documented
//! meaning, and Auditdesk's own `logout`, `export` and `verify`.

use std::fmt;
use std::str::FromStr;

/// What a user did to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    AutoOff,
    AutoStart,
    Connect,
    Cordon,
    Create,
    Delete,
    Enqueue,
    Login,
    Open,
    Ssh,
    Stop,
    Uncordon,
    View,
    Write,
    Logout,
    Export,
    Verify,
}

impl Action {
    /// Every action, in the order the Action dropdown lists them.
    pub const ALL: [Action; 17] = [
        Action::AutoOff,
        Action::AutoStart,
        Action::Connect,
        Action::Cordon,
        Action::Create,
        Action::Delete,
        Action::Enqueue,
        Action::Export,
        Action::Login,
        Action::Logout,
        Action::Open,
        Action::Ssh,
        Action::Stop,
        Action::Uncordon,
        Action::Verify,
        Action::View,
        Action::Write,
    ];

    /// The name used in URLs, exports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::AutoOff => "auto_off",
            Action::AutoStart => "auto_start",
            Action::Connect => "connect",
            Action::Cordon => "cordon",
            Action::Create => "create",
            Action::Delete => "delete",
            Action::Enqueue => "enqueue",
            Action::Login => "login",
            Action::Open => "open",
            Action::Ssh => "ssh",
            Action::Stop => "stop",
            Action::Uncordon => "uncordon",
            Action::View => "view",
            Action::Write => "write",
            Action::Logout => "logout",
            Action::Export => "export",
            Action::Verify => "verify",
        }
    }

    /// The one-line meaning, as the seed documents it.
    pub fn description(self) -> &'static str {
        match self {
            Action::AutoOff => "The system automatically turned off a workspace due to inactivity",
            Action::AutoStart => {
                "The system automatically turned on a workspace at the time preset by its owner"
            }
            Action::Connect => {
                "A user connected to an existing workspace (local VS Code, JetBrains Gateway, ssh or the CLI)"
            }
            Action::Cordon => {
                "A workspace provider became unavailable for new workspace creation requests"
            }
            Action::Create => "The user created an entity (e.g. dev URL, image, workspace)",
            Action::Delete => "A user deleted an entity (e.g. workspace or image)",
            Action::Enqueue => {
                "A user added a new job to the queue (e.g. workspace build, user deletion)"
            }
            Action::Login => "A user logged in (a failed login carries a 4xx status code)",
            Action::Open => "A user opened a workspace using the web IDE in the browser",
            Action::Ssh => "A user opened a web terminal",
            Action::Stop => "A user manually stopped a workspace",
            Action::Uncordon => {
                "A workspace provider became available for new workspace creation requests"
            }
            Action::View => "The CLI used a secret",
            Action::Write => {
                "The user made a change to an entity (e.g. workspace, user, resource pool)"
            }
            Action::Logout => "A user logged out of Auditdesk",
            Action::Export => "A user exported audit events from Auditdesk",
            Action::Verify => {
                "Auditdesk checked the log's integrity (a failure carries a 4xx status code and what failed in its diff)"
            }
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`Action::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(pub String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown action '{}' (expected one of: ", self.0)?;
        for (i, a) in Action::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(a.as_str())?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for UnknownAction {}

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_name() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
    }

    #[test]
    fn unknown_action_is_named_in_the_error() {
        let err = "read".parse::<Action>().unwrap_err();
        assert!(err.to_string().contains("unknown action 'read'"));
        assert!(err.to_string().contains("auto_off"));
    }

    #[test]
    fn names_are_case_sensitive() {
        assert!("Write".parse::<Action>().is_err());
    }
}
