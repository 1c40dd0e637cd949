//! Managing users: every change is validated here and audited in the same
//! transaction that makes it, so the log and the users table never disagree.

use chrono::Utc;
use uuid::Uuid;

use super::Role;
use super::password::{WeakPassword, check_new_password};
use crate::audit::{Action, Actor, Diff, Event, FieldChange, store};
use crate::db::users::{NewUserRow, Taken, UserRow};
use crate::db::{self, DbConn, DbError};
use crate::ids::UserId;

/// A user account as the rest of the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub suspended: bool,
    pub last_login_at: Option<chrono::DateTime<Utc>>,
}

/// Who made a change, and from where: a logged-in site manager, or the local
/// operator at the command line.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    pub actor: Actor,
    pub ip: String,
    pub user_agent: String,
}

impl ChangedBy {
    /// The person at the command line of this machine.
    pub fn local_operator() -> Self {
        let who = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Self {
            actor: Actor {
                username: "local-operator".into(),
                email: format!("{who}@localhost (auditdesk CLI)"),
            },
            ip: String::new(),
            user_agent: format!("auditdesk-cli/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Why a user change was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    InvalidUsername(String),
    #[error("{0}")]
    InvalidEmail(String),
    #[error("{0}")]
    WeakPassword(WeakPassword),
    #[error("the username '{0}' is already taken")]
    UsernameTaken(String),
    #[error("the email '{0}' is already used by another user")]
    EmailTaken(String),
    #[error("no user named '{0}'")]
    NotFound(String),
    /// The change would leave no active site manager, locking everyone out.
    #[error("refused: this is the last active site manager; make another user site manager first")]
    LastSiteManager,
    /// The first-run setup was asked for, but users already exist.
    #[error("setup is already done: users exist")]
    SetupDone,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for UserError {
    fn from(e: diesel::result::Error) -> Self {
        // Through DbError's own conversion: a busy database is a 503, not a 500.
        Self::Db(e.into())
    }
}

/// Checks a username: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_username(username: &str) -> Result<(), UserError> {
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let ok_start = username
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if username.is_empty() || username.len() > 64 || !ok_chars || !ok_start {
        return Err(UserError::InvalidUsername(format!(
            "invalid username '{username}': use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Checks an email address and returns it in lowercase.
pub fn normalize_email(email: &str) -> Result<String, UserError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !valid {
        return Err(UserError::InvalidEmail(format!(
            "invalid email address '{email}'"
        )));
    }
    Ok(email)
}

fn to_user(row: UserRow) -> User {
    User {
        id: UserId(row.id),
        // The CHECK constraint keeps the column to the three names.
        role: row.role.parse().unwrap_or(Role::Member),
        username: row.username,
        email: row.email,
        suspended: row.suspended,
        last_login_at: row
            .last_login_at
            .map(|t| chrono::DateTime::from_naive_utc_and_offset(t, Utc)),
    }
}

/// A user and their password hash, for checking a login.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// Looks up a login name: a username, or an email address (any case).
pub fn find_for_login(conn: &mut DbConn, login: &str) -> Result<Option<Credentials>, DbError> {
    let row = match db::users::find_by_username(conn, login)? {
        Some(row) => Some(row),
        None => db::users::find_by_email(conn, &login.trim().to_lowercase())?,
    };
    Ok(row.map(|row| Credentials {
        password_hash: row.password_hash.clone(),
        user: to_user(row),
    }))
}

/// The user with this id.
pub fn find_by_id(conn: &mut DbConn, id: UserId) -> Result<Option<User>, DbError> {
    Ok(db::users::find_by_id(conn, id)?.map(to_user))
}

/// Every user, by username.
pub fn list(conn: &mut DbConn) -> Result<Vec<User>, DbError> {
    Ok(db::users::list(conn)?.into_iter().map(to_user).collect())
}

/// Whether any user exists yet.
pub fn any_exist(conn: &mut DbConn) -> Result<bool, DbError> {
    db::users::any_exist(conn)
}

fn change(old: Option<serde_json::Value>, new: Option<serde_json::Value>) -> FieldChange {
    FieldChange::values(old, new)
}

fn user_event(by: &ChangedBy, action: Action, user: &User, diff: Diff) -> Event {
    Event {
        id: Uuid::new_v4(),
        time: crate::audit::event::truncate_to_micros(Utc::now()),
        user: by.actor.clone(),
        action,
        resource_type: "user".into(),
        resource_id: format!("usr-{}", user.id),
        resource_target: user.email.clone(),
        diff,
        ip: by.ip.clone(),
        user_agent: by.user_agent.clone(),
        status_code: 200,
        request_id: Uuid::new_v4().to_string(),
    }
}

/// A new account's details; the password is already hashed (hash on a blocking
/// thread before calling, it is slow on purpose).
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
}

/// Checks a new account's fields before the (slow) password hash is made.
pub fn check_new_user(username: &str, email: &str, password: &str) -> Result<String, UserError> {
    check_username(username)?;
    let email = normalize_email(email)?;
    check_new_password(password, &[username, &email]).map_err(UserError::WeakPassword)?;
    Ok(email)
}

/// Creates a user and records a `create` event with its username, email and role.
pub fn create(conn: &mut DbConn, new: &NewUser<'_>, by: &ChangedBy) -> Result<User, UserError> {
    check_username(new.username)?;
    let email = normalize_email(new.email)?;
    db::write_transaction(conn, |conn| {
        let now = Utc::now().naive_utc();
        let row = NewUserRow {
            username: new.username,
            email: &email,
            password_hash: new.password_hash,
            role: new.role.as_str(),
            suspended: false,
            created_at: now,
            updated_at: now,
        };
        let user = match db::users::insert(conn, &row)? {
            Ok(row) => to_user(row),
            Err(Taken::Username) => return Err(UserError::UsernameTaken(new.username.to_owned())),
            Err(Taken::Email) => return Err(UserError::EmailTaken(email.clone())),
        };
        let diff = Diff::from([
            (
                "username".to_owned(),
                change(None, Some(user.username.clone().into())),
            ),
            (
                "email".to_owned(),
                change(None, Some(user.email.clone().into())),
            ),
            (
                "role".to_owned(),
                change(None, Some(user.role.as_str().into())),
            ),
        ]);
        store::record(conn, user_event(by, Action::Create, &user, diff))?;
        Ok(user)
    })
}

/// Creates the first Site Manager, only while no user exists (two visitors racing
/// through the setup page cannot both succeed).
pub fn create_first(
    conn: &mut DbConn,
    new: &NewUser<'_>,
    by: &ChangedBy,
) -> Result<User, UserError> {
    db::write_transaction(conn, |conn| {
        if db::users::any_exist(conn)? {
            return Err(UserError::SetupDone);
        }
        create(conn, new, by)
    })
}

/// The user named `username`, or [`UserError::NotFound`].
pub fn load(conn: &mut DbConn, username: &str) -> Result<User, UserError> {
    db::users::find_by_username(conn, username)?
        .map(to_user)
        .ok_or_else(|| UserError::NotFound(username.to_owned()))
}

/// Refuses a change that would leave no active site manager.
fn keep_a_site_manager(
    conn: &mut DbConn,
    user: &User,
    still_manages: bool,
) -> Result<(), UserError> {
    let is_active_manager = user.role == Role::SiteManager && !user.suspended;
    if !is_active_manager || still_manages {
        return Ok(());
    }
    // Counted under a lock, so two managers demoting each other at once cannot
    // both see the other one remain.
    db::users::lock_for_role_change(conn)?;
    if db::users::count_active_site_managers(conn)? <= 1 {
        return Err(UserError::LastSiteManager);
    }
    Ok(())
}

/// Changes a user's role, ends their sessions, and records a `write` with the
/// `role` field. Returns the user as it was before (unchanged role: no event).
pub fn set_role(
    conn: &mut DbConn,
    username: &str,
    role: Role,
    by: &ChangedBy,
) -> Result<User, UserError> {
    db::write_transaction(conn, |conn| {
        let user = load(conn, username)?;
        if user.role == role {
            return Ok(user);
        }
        keep_a_site_manager(conn, &user, role == Role::SiteManager)?;
        db::users::set_role(conn, user.id, role.as_str(), Utc::now().naive_utc())?;
        db::sessions::delete_for_user(conn, user.id)?;
        let diff = Diff::from([(
            "role".to_owned(),
            change(Some(user.role.as_str().into()), Some(role.as_str().into())),
        )]);
        store::record(conn, user_event(by, Action::Write, &user, diff))?;
        Ok(user)
    })
}

/// Suspends (`true`) or reactivates (`false`) a user; suspension ends their
/// sessions. Records a `write` with the `suspended` field.
pub fn set_suspended(
    conn: &mut DbConn,
    username: &str,
    suspended: bool,
    by: &ChangedBy,
) -> Result<User, UserError> {
    db::write_transaction(conn, |conn| {
        let user = load(conn, username)?;
        if user.suspended == suspended {
            return Ok(user);
        }
        if suspended {
            keep_a_site_manager(conn, &user, false)?;
        }
        db::users::set_suspended(conn, user.id, suspended, Utc::now().naive_utc())?;
        if suspended {
            db::sessions::delete_for_user(conn, user.id)?;
        }
        let diff = Diff::from([(
            "suspended".to_owned(),
            change(Some(user.suspended.into()), Some(suspended.into())),
        )]);
        store::record(conn, user_event(by, Action::Write, &user, diff))?;
        Ok(user)
    })
}

/// Replaces a user's password (already hashed), ends their sessions, and records
/// a `write` whose `password` field is secret: no value is ever stored.
pub fn reset_password(
    conn: &mut DbConn,
    username: &str,
    password_hash: &str,
    by: &ChangedBy,
) -> Result<User, UserError> {
    db::write_transaction(conn, |conn| {
        let user = load(conn, username)?;
        db::users::set_password_hash(conn, user.id, password_hash, Utc::now().naive_utc())?;
        db::sessions::delete_for_user(conn, user.id)?;
        let diff = Diff::from([("password".to_owned(), FieldChange::secret())]);
        store::record(conn, user_event(by, Action::Write, &user, diff))?;
        Ok(user)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("alice.b-2_x").is_ok());
        for bad in ["", "Alice", "-alice", "al ice", &"a".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            normalize_email(" Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
