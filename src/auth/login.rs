//! Logging in and out: the throttle, the password check, and the audit events
//! that every attempt leaves behind.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::Secret;
use super::password::verify_password;
use super::users::{self, User};
use crate::audit::{Action, Actor, Diff, Event, event::truncate_to_micros, store};
use crate::db::{self, DbConn, DbError};

/// Failed logins for one account name within [`WINDOW_MINUTES`] before it is refused.
pub const ACCOUNT_LIMIT: i64 = 5;
/// Failed logins from one address within [`WINDOW_MINUTES`] before it is refused.
pub const ADDRESS_LIMIT: i64 = 20;
/// The throttle's window, in minutes.
pub const WINDOW_MINUTES: i64 = 15;

/// Who is trying to log in, and from where.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// A username or an email address, as typed.
    pub login: String,
    pub password: Secret,
    pub ip: String,
    pub user_agent: String,
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The password matched an active account.
    Success(User),
    /// Unknown account or wrong password (the two are not told apart).
    BadCredentials,
    /// The password matched, but the account is suspended.
    Suspended,
    /// Too many recent failures for this account or address; refused until then,
    /// whatever the password.
    Throttled { until: DateTime<Utc> },
}

/// The key the throttle counts failures under: the login name as typed,
/// trimmed and in lowercase, whether or not such an account exists.
fn account_key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// When the throttle lets this account and address try again, if it is engaged now.
pub fn throttled_until(
    conn: &mut DbConn,
    login: &str,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let window = Duration::minutes(WINDOW_MINUTES);
    let since = (now - window).naive_utc();
    let mut until: Option<DateTime<Utc>> = None;
    let (n, oldest) = db::login_failures::for_account(conn, &account_key(login), since)?;
    if n >= ACCOUNT_LIMIT
        && let Some(oldest) = oldest
    {
        until = Some(DateTime::from_naive_utc_and_offset(oldest, Utc) + window);
    }
    if !ip.is_empty() {
        let (n, oldest) = db::login_failures::for_ip(conn, ip, since)?;
        if n >= ADDRESS_LIMIT
            && let Some(oldest) = oldest
        {
            let ip_until = DateTime::from_naive_utc_and_offset(oldest, Utc) + window;
            until = Some(until.map_or(ip_until, |u| u.max(ip_until)));
        }
    }
    Ok(until)
}

/// Checks an attempt and records it: a `login` event with status 200 on success,
/// or with a 4xx status and the attempted name as the actor on failure.
/// Slow on purpose (argon2): call it on a blocking thread.
pub fn attempt(
    conn: &mut DbConn,
    a: &LoginAttempt,
    now: DateTime<Utc>,
) -> Result<LoginOutcome, DbError> {
    if let Some(until) = throttled_until(conn, &a.login, &a.ip, now)? {
        record(conn, a, None, 429, now)?;
        return Ok(LoginOutcome::Throttled { until });
    }
    let credentials = users::find_for_login(conn, a.login.trim())?;
    // Always run one argon2 verification, against a dummy hash for an unknown
    // account, so that the time taken does not reveal which accounts exist.
    let matches = verify_password(
        credentials.as_ref().map(|c| c.password_hash.as_str()),
        a.password.expose(),
    );
    match credentials {
        Some(c) if matches && !c.user.suspended => {
            db::write_transaction(conn, |conn| {
                db::login_failures::clear_account(conn, &account_key(&a.login))?;
                db::users::set_last_login(conn, c.user.id, now.naive_utc())?;
                record(conn, a, Some(&c.user), 200, now)
            })?;
            Ok(LoginOutcome::Success(c.user))
        }
        Some(c) if matches => {
            record(conn, a, Some(&c.user), 403, now)?;
            Ok(LoginOutcome::Suspended)
        }
        other => {
            db::write_transaction(conn, |conn| {
                db::login_failures::record(conn, &account_key(&a.login), &a.ip, now.naive_utc())?;
                if rand::random::<u8>() < 4 {
                    // Now and then, forget failures too old to matter.
                    db::login_failures::prune(conn, (now - Duration::days(1)).naive_utc())?;
                }
                record(conn, a, other.as_ref().map(|c| &c.user), 401, now)
            })?;
            Ok(LoginOutcome::BadCredentials)
        }
    }
}

fn record(
    conn: &mut DbConn,
    a: &LoginAttempt,
    user: Option<&User>,
    status_code: u16,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    // A failed attempt is logged under the name that was tried: that is what an
    // auditor searches for. A known account is logged under its username.
    let (actor, resource_id, target) = match user {
        Some(u) if status_code < 400 => (
            Actor {
                username: u.username.clone(),
                email: u.email.clone(),
            },
            format!("usr-{}", u.id),
            u.email.clone(),
        ),
        Some(u) => (
            Actor {
                username: a.login.clone(),
                email: String::new(),
            },
            format!("usr-{}", u.id),
            u.email.clone(),
        ),
        None => (
            Actor {
                username: a.login.clone(),
                email: String::new(),
            },
            String::new(),
            a.login.clone(),
        ),
    };
    store::record(
        conn,
        Event {
            id: Uuid::new_v4(),
            time: truncate_to_micros(now),
            // As typed (the login form refuses only NUL and names over the
            // username limit): an odd name must not disguise an attempt.
            user: actor,
            action: Action::Login,
            resource_type: "user".into(),
            resource_id,
            resource_target: clip(&target, crate::audit::event::limits::RESOURCE_TARGET),
            diff: Diff::new(),
            ip: a.ip.clone(),
            user_agent: clip(&a.user_agent, crate::audit::event::limits::USER_AGENT),
            status_code,
            request_id: Uuid::new_v4().to_string(),
        },
    )
}

/// Records a logout.
pub fn record_logout(
    conn: &mut DbConn,
    user: &User,
    ip: &str,
    user_agent: &str,
) -> Result<(), DbError> {
    store::record(
        conn,
        Event {
            id: Uuid::new_v4(),
            time: truncate_to_micros(Utc::now()),
            user: Actor {
                username: user.username.clone(),
                email: user.email.clone(),
            },
            action: Action::Logout,
            resource_type: "user".into(),
            resource_id: format!("usr-{}", user.id),
            resource_target: user.email.clone(),
            diff: Diff::new(),
            ip: ip.to_owned(),
            user_agent: clip(user_agent, crate::audit::event::limits::USER_AGENT),
            status_code: 200,
            request_id: Uuid::new_v4().to_string(),
        },
    )
}

fn clip(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
