//! Logging in and out: the throttle, the password check, and the audit events
//! that every attempt leaves behind.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::Secret;
use super::password::verify_password;
use super::users::{self, User};
use crate::audit::{Action, Actor, Diff, Event, event::truncate_to_micros, store};
use crate::db::{self, DbConn, DbError};

/// How the throttle slows guessing without handing anyone a way to lock an
/// owner out (a fixed lockout per account is a denial-of-service tool).
///
/// Failures are counted over [`WINDOW_MINUTES`] per (account name, address)
/// and per address. Past a free allowance each further failure doubles the
/// wait before the next try, from [`FIRST_DELAY_SECONDS`] up to
/// [`MAX_DELAY_SECONDS`]; a try refused meanwhile is not a failure, so
/// hammering does not lengthen the wait. An account's owner at another address
/// is untouched. Only when one account has [`ACCOUNT_CEILING`] failures (a
/// distributed attack, one guess from each of many addresses) does the
/// account itself slow: every address that has failed for it waits after
/// each failure, and the account takes one try every
/// [`ACCOUNT_PACE_SECONDS`] from clients that have not logged in to it
/// before. A browser that has (it holds the account's device cookie, OWASP's
/// "device cookies") is not paced, so its owner gets in at once. Nothing
/// ever locks.
pub mod policy {
    /// Failures per account name and address before waits begin.
    pub const PAIR_ALLOWANCE: i64 = 5;
    /// Failures per address, over all account names, before waits begin.
    pub const ADDRESS_ALLOWANCE: i64 = 20;
    /// Failures of one account, from every address, after which each failing
    /// address waits after every failure.
    pub const ACCOUNT_CEILING: i64 = 100;
    /// At the ceiling: the least time between two tries at the account from
    /// clients without its device cookie.
    pub const ACCOUNT_PACE_SECONDS: i64 = 10;
    /// The first wait, doubled by each further failure.
    pub const FIRST_DELAY_SECONDS: i64 = 30;
    /// The longest wait.
    pub const MAX_DELAY_SECONDS: i64 = 15 * 60;
    /// Failures older than this are forgotten by the throttle.
    pub const WINDOW_MINUTES: i64 = 60;

    /// The wait after the latest of `failures`, given a free `allowance`.
    pub fn delay_seconds(failures: i64, allowance: i64) -> Option<i64> {
        let beyond = failures - allowance;
        (beyond >= 0).then(|| {
            let doublings = u32::try_from(beyond.min(16)).unwrap_or(16);
            (FIRST_DELAY_SECONDS << doublings).min(MAX_DELAY_SECONDS)
        })
    }
}

/// Who is trying to log in, and from where.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// A username or an email address, as typed.
    pub login: String,
    pub password: Secret,
    pub ip: String,
    pub user_agent: String,
    /// The account whose device cookie this client holds (it logged in to
    /// it from here before), checked by the caller.
    pub known_device: Option<crate::ids::UserId>,
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
    /// Too many recent failures for this account name from this address, or
    /// from this address; refused until then, whatever the password.
    Throttled { until: DateTime<Utc> },
}

/// The key the throttle counts failures under: the login name as typed,
/// trimmed and in lowercase, whether or not such an account exists.
fn account_key(login: &str) -> String {
    login.trim().to_lowercase()
}

/// The address as the throttle counts it: an IPv4 address as it is, an IPv6
/// address by its /64 network, since one host is commonly given a whole /64
/// and could otherwise take a new address for every try.
fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{network}/64")
        }
        _ => ip.to_owned(),
    }
}

/// When the throttle lets this account name and address try again, if it
/// is holding them back now (see [`policy`]). `known_device`: the client
/// holds this account's device cookie.
pub fn throttled_until(
    conn: &mut DbConn,
    login: &str,
    ip: &str,
    known_device: bool,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbError> {
    use policy::{
        ACCOUNT_CEILING, ACCOUNT_PACE_SECONDS, ADDRESS_ALLOWANCE, PAIR_ALLOWANCE, WINDOW_MINUTES,
        delay_seconds,
    };
    let since = (now - Duration::minutes(WINDOW_MINUTES)).naive_utc();
    let account = account_key(login);
    let ip = &address_key(ip);
    let wait_after = |latest: Option<chrono::NaiveDateTime>, delay: Option<i64>| {
        latest
            .zip(delay)
            .map(|(t, d)| DateTime::from_naive_utc_and_offset(t, Utc) + Duration::seconds(d))
            .filter(|until| *until > now)
    };
    let later = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| a.max(b);
    let (account_failures, account_latest) =
        db::login_failures::for_account(conn, &account, since)?;
    let besieged = account_failures >= ACCOUNT_CEILING;
    let mut until = None;
    if besieged && !known_device {
        until = wait_after(account_latest, Some(ACCOUNT_PACE_SECONDS));
    }
    let (pair, pair_latest) = db::login_failures::for_pair(conn, &account, ip, since)?;
    if pair > 0 {
        let allowance = if besieged { 1 } else { PAIR_ALLOWANCE };
        until = later(
            until,
            wait_after(pair_latest, delay_seconds(pair, allowance)),
        );
    }
    if !ip.is_empty() {
        let (from_ip, ip_latest) = db::login_failures::for_ip(conn, ip, since)?;
        until = later(
            until,
            wait_after(ip_latest, delay_seconds(from_ip, ADDRESS_ALLOWANCE)),
        );
    }
    Ok(until)
}

/// Which refused (throttled) tries are recorded as events: for each account
/// name and each address, the first, then none for [`Self::QUIET_SECONDS`].
/// A refusal costs the attacker no password check, so recording every one
/// would let anyone fill the log and the disk cheaply; the failures that
/// earned the wait are recorded each. Kept per process: with several
/// instances each records its own first.
#[derive(Debug, Default)]
pub struct RefusalRecords(std::sync::Mutex<RecordedRefusals>);

#[derive(Debug, Default)]
struct RecordedRefusals {
    accounts: std::collections::HashMap<String, DateTime<Utc>>,
    addresses: std::collections::HashMap<String, DateTime<Utc>>,
}

impl RefusalRecords {
    /// How long after a recorded refusal further ones for the same account
    /// name or address go unrecorded.
    pub const QUIET_SECONDS: i64 = 60;
    /// Names and addresses remembered at most; past it the old are dropped.
    const REMEMBERED: usize = 10_000;

    /// Whether this refusal is to be recorded (and, if so, notes it).
    fn should_record(&self, account: &str, address: &str, now: DateTime<Utc>) -> bool {
        let Ok(mut guard) = self.0.lock() else {
            return true;
        };
        let seen = &mut *guard;
        let quiet_since = now - Duration::seconds(Self::QUIET_SECONDS);
        let recent = |map: &std::collections::HashMap<String, DateTime<Utc>>, key: &str| {
            map.get(key).is_some_and(|t| *t > quiet_since)
        };
        if recent(&seen.accounts, account) || recent(&seen.addresses, address) {
            return false;
        }
        for map in [&mut seen.accounts, &mut seen.addresses] {
            if map.len() >= Self::REMEMBERED {
                map.retain(|_, t| *t > quiet_since);
                if map.len() >= Self::REMEMBERED {
                    map.clear();
                }
            }
        }
        seen.accounts.insert(account.to_owned(), now);
        seen.addresses.insert(address.to_owned(), now);
        true
    }
}

/// Checks an attempt and records it: a `login` event with status 200 on success,
/// or with a 4xx status and the attempted name as the actor on failure.
/// Slow on purpose (argon2): call it on a blocking thread.
pub fn attempt(
    conn: &mut DbConn,
    a: &LoginAttempt,
    refusals: &RefusalRecords,
    now: DateTime<Utc>,
) -> Result<LoginOutcome, DbError> {
    let credentials = users::find_for_login(conn, a.login.trim())?;
    let known_device = matches!(
        (&credentials, a.known_device),
        (Some(c), Some(id)) if c.user.id == id
    );
    if let Some(until) = throttled_until(conn, &a.login, &a.ip, known_device, now)? {
        if refusals.should_record(&account_key(&a.login), &address_key(&a.ip), now) {
            record(conn, a, None, 429, now)?;
        }
        return Ok(LoginOutcome::Throttled { until });
    }
    // Always run one argon2 verification, against a dummy hash for an unknown
    // account, so that the time taken does not reveal which accounts exist.
    let matches = verify_password(
        credentials.as_ref().map(|c| c.password_hash.as_str()),
        a.password.expose(),
    );
    match credentials {
        Some(c) if matches && !c.user.suspended => {
            db::write_transaction(conn, |conn| {
                let address = address_key(&a.ip);
                db::login_failures::clear_pair(conn, &account_key(&a.login), &address)?;
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
                let (account, address) = (account_key(&a.login), address_key(&a.ip));
                db::login_failures::record(conn, &account, &address, now.naive_utc())?;
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

#[cfg(test)]
mod tests {
    use super::policy::*;

    #[test]
    fn a_refusal_is_recorded_once_a_minute_per_name_and_per_address() {
        use super::RefusalRecords;
        let records = RefusalRecords::default();
        let t0 = chrono::Utc::now();
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert!(records.should_record("alice", "192.0.2.1", at(0)));
        assert!(!records.should_record("alice", "192.0.2.1", at(1)));
        assert!(
            !records.should_record("alice", "192.0.2.2", at(2)),
            "same name"
        );
        assert!(
            !records.should_record("bob", "192.0.2.1", at(3)),
            "same address"
        );
        assert!(records.should_record("bob", "192.0.2.3", at(4)));
        assert!(
            records.should_record("alice", "192.0.2.1", at(61)),
            "a minute on"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network() {
        use super::address_key;
        assert_eq!(address_key("2001:db8:1:2::7"), "2001:db8:1:2::/64");
        assert_eq!(
            address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(address_key("2001:db8:1:3::7"), "2001:db8:1:3::/64");
        assert_eq!(address_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(address_key(""), "");
    }

    #[test]
    fn waits_begin_after_the_allowance_and_double_up_to_the_cap() {
        assert_eq!(delay_seconds(4, PAIR_ALLOWANCE), None);
        assert_eq!(delay_seconds(5, PAIR_ALLOWANCE), Some(30));
        assert_eq!(delay_seconds(6, PAIR_ALLOWANCE), Some(60));
        assert_eq!(delay_seconds(9, PAIR_ALLOWANCE), Some(480));
        assert_eq!(delay_seconds(10, PAIR_ALLOWANCE), Some(MAX_DELAY_SECONDS));
        assert_eq!(
            delay_seconds(10_000, PAIR_ALLOWANCE),
            Some(MAX_DELAY_SECONDS)
        );
        assert_eq!(delay_seconds(1, 1), Some(30));
    }
}
