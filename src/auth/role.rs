//! Roles, and what each may do.

use std::fmt;
use std::str::FromStr;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads the audit log and manages users and tokens.
    SiteManager,
    /// Reads the audit log.
    Auditor,
    /// Has an account but may not read the audit log.
    Member,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 3] = [Role::SiteManager, Role::Auditor, Role::Member];

    /// The name used in the CLI, forms and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SiteManager => "site_manager",
            Role::Auditor => "auditor",
            Role::Member => "member",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Role::SiteManager => "Site Manager",
            Role::Auditor => "Auditor",
            Role::Member => "Member",
        }
    }

    /// May read Manage > Audit and export it.
    pub fn can_read_audit(self) -> bool {
        matches!(self, Role::SiteManager | Role::Auditor)
    }

    /// May manage users and API tokens.
    pub fn can_manage_users(self) -> bool {
        matches!(self, Role::SiteManager)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}' (expected site_manager, auditor or member)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_site_managers_and_auditors_read_the_log() {
        assert!(Role::SiteManager.can_read_audit());
        assert!(Role::Auditor.can_read_audit());
        assert!(!Role::Member.can_read_audit());
        assert!(!Role::Auditor.can_manage_users());
    }

    #[test]
    fn role_names_parse_and_unknown_ones_are_named() {
        assert_eq!("auditor".parse(), Ok(Role::Auditor));
        assert_eq!(
            "admin".parse::<Role>().unwrap_err().to_string(),
            "unknown role 'admin' (expected site_manager, auditor or member)"
        );
    }
}
