//! `auditdesk demo`: a realistic sample so a new user sees a living page — a few
//! thousand events over the last 30 days, every action, admin-setting writes
//! with Field/Diff like the seed's tables, secret changes and failed logins.
//! The sample is the same for a whole hour (seeded by it), so running the
//! command twice in one hour stores it once; a later run adds a fresh sample.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::event::truncate_to_micros;
use super::{Action, Actor, Diff, Event, FieldChange, NewEvent};

/// How many events the sample holds.
pub const SAMPLE_SIZE: usize = 3_000;

const PEOPLE: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];
const IMAGES: [&str; 4] = [
    "coder/ubuntu:22.04",
    "coder/python:3.12",
    "coder/go:1.23",
    "coder/node:20",
];

/// An admin-panel setting as the seed lists it: type, target, field, old, new, secret.
type Setting = (&'static str, &'static str, &'static str, Value, Value, bool);

fn settings() -> Vec<Setting> {
    vec![
        (
            "infrastructure",
            "infrastructure",
            "access_url",
            json!("https://old.example.com"),
            json!("https://coder.example.com"),
            false,
        ),
        (
            "infrastructure",
            "infrastructure",
            "gpu_vendor",
            json!("none"),
            json!("nvidia"),
            false,
        ),
        (
            "infrastructure",
            "infrastructure",
            "enable_container_vms",
            json!(false),
            json!(true),
            false,
        ),
        (
            "infrastructure",
            "infrastructure",
            "memory_overprovisioning_enabled",
            json!(true),
            json!(false),
            false,
        ),
        (
            "features",
            "features",
            "exectrace",
            json!("disabled"),
            json!("enabled"),
            false,
        ),
        (
            "features",
            "features",
            "tun_device",
            json!("disabled"),
            json!("enabled"),
            false,
        ),
        (
            "oauth_configs",
            "GitHub",
            "client_id",
            json!("0fb2c4e1a9d35b7f8e6c2a1d9b3e7a4a"),
            json!("5e1d9c0b7a6f4e3d2c1b0a9f8e7d6c5b"),
            false,
        ),
        (
            "oauth_configs",
            "GitHub",
            "client_secret",
            Value::Null,
            Value::Null,
            true,
        ),
        (
            "oauth_configs",
            "GitHub",
            "description",
            json!("old"),
            json!("example"),
            false,
        ),
        (
            "oauth_configs",
            "GitHub",
            "service_type",
            json!("github"),
            json!("gitlab"),
            false,
        ),
        (
            "oauth_configs",
            "GitHub",
            "url_host",
            json!("github.com"),
            json!("host.com"),
            false,
        ),
        (
            "system_banner",
            "system banner",
            "enabled",
            json!(false),
            json!(true),
            false,
        ),
        (
            "system_banner",
            "system banner",
            "color_bg",
            json!("#FFFFFF"),
            json!("#9A4967"),
            false,
        ),
        (
            "system_banner",
            "system banner",
            "text_footer",
            json!(""),
            json!("UNCLASSIFIED"),
            false,
        ),
        (
            "appearance",
            "appearance",
            "svc_banner_body",
            json!(""),
            json!("Maintenance 9:01PM"),
            false,
        ),
        (
            "appearance",
            "appearance",
            "svc_banner_color_bg",
            json!("#FFFFFF"),
            json!("#18382D"),
            false,
        ),
        (
            "appearance",
            "appearance",
            "tos_body",
            json!(""),
            json!("Accept Terms & Conditions"),
            false,
        ),
        (
            "telemetry",
            "telemetry",
            "crash_reports_enabled",
            json!(true),
            json!(false),
            false,
        ),
        (
            "local",
            "local",
            "commit",
            json!("0000000000000000000000000000000000000000"),
            json!("ed19a3f07c5b2d8e61f4a9c0b7d3e2f15a6c843b"),
            false,
        ),
        (
            "secret",
            "alice/GITHUB_TOKEN",
            "value",
            Value::Null,
            Value::Null,
            true,
        ),
    ]
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn ip_of(person: usize) -> String {
    format!("198.51.100.{}", 10 + person * 7)
}

/// The sample for the hour of `now`: 30 days up to the start of that hour.
pub fn sample(now: DateTime<Utc>) -> Vec<NewEvent> {
    let hour = now.timestamp().div_euclid(3600);
    let mut rng = StdRng::seed_from_u64(u64::try_from(hour).unwrap_or(1));
    let end = DateTime::<Utc>::from_timestamp(hour * 3600, 0).unwrap_or(now);
    let start = end - Duration::days(30);
    let span_ms = (end - start).num_milliseconds().max(1);
    let settings = settings();
    let mut events = Vec::with_capacity(SAMPLE_SIZE);
    for i in 0..SAMPLE_SIZE {
        // Spread evenly with jitter, oldest first, so the newest is near now.
        let offset = span_ms * i as i64 / SAMPLE_SIZE as i64
            + rng.gen_range(0..span_ms / SAMPLE_SIZE as i64);
        let time = truncate_to_micros(start + Duration::milliseconds(offset.min(span_ms - 1)));
        let p = rng.gen_range(0..PEOPLE.len());
        let person = PEOPLE[p];
        let workspace = format!("{person}-dev-{}", rng.gen_range(1..4));
        let roll: u32 = rng.gen_range(0..1000);
        let mut diff = Diff::new();
        let mut status: u16 = 200;
        let mut ua =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
                .to_owned();
        let (action, rtype, target, rid): (Action, &str, String, String) = match roll {
            0..=219 => {
                ua = pick(
                    &mut rng,
                    &[
                        "coder/2.14.0 (linux/amd64)",
                        "VS Code/1.91.0",
                        "JetBrains Gateway/2024.1",
                    ],
                )
                .to_string();
                (
                    Action::Connect,
                    "workspace",
                    workspace.clone(),
                    format!("ws-{p}"),
                )
            }
            220..=359 => (
                Action::Open,
                "workspace",
                workspace.clone(),
                format!("ws-{p}"),
            ),
            360..=479 => (
                Action::Ssh,
                "workspace",
                workspace.clone(),
                format!("ws-{p}"),
            ),
            480..=599 => {
                if rng.gen_range(0..10) == 0 {
                    status = 401;
                }
                (
                    Action::Login,
                    "user",
                    format!("{person}@example.com"),
                    format!("usr-{p}"),
                )
            }
            600..=689 => {
                ua = "coder/2.14.0 (linux/amd64)".into();
                (
                    Action::View,
                    "secret",
                    format!("{person}/GITHUB_TOKEN"),
                    format!("sec-{p}"),
                )
            }
            690..=789 => {
                let s = pick(&mut rng, &settings).clone();
                let change = if s.5 {
                    FieldChange::secret()
                } else {
                    FieldChange::values(Some(s.3.clone()), Some(s.4.clone()))
                };
                diff.insert(s.2.to_owned(), change);
                let who = PEOPLE[0]; // admin-panel changes are made by the site manager
                events.push(event(
                    &mut rng,
                    time,
                    who,
                    0,
                    Action::Write,
                    s.0,
                    s.1,
                    &format!("{}-1", &s.0[..3]),
                    diff,
                    status,
                    &ua,
                ));
                continue;
            }
            790..=839 => {
                let (rt, tg) = *pick(
                    &mut rng,
                    &[
                        ("workspace", workspace.as_str()),
                        ("image", IMAGES[p % IMAGES.len()]),
                        ("dev_url", "preview-8080"),
                    ],
                );
                (
                    Action::Create,
                    rt,
                    tg.to_owned(),
                    format!("{}-{}", &rt[..2], rng.gen_range(1..200)),
                )
            }
            840..=864 => (
                Action::Delete,
                "workspace",
                workspace.clone(),
                format!("ws-{p}"),
            ),
            865..=904 => (
                Action::Stop,
                "workspace",
                workspace.clone(),
                format!("ws-{p}"),
            ),
            905..=934 => (
                Action::Enqueue,
                "workspace",
                format!("{workspace} build"),
                format!("job-{}", rng.gen_range(1..5000)),
            ),
            935..=964 => {
                ua = "coder-daemon/2.14.0".into();
                (
                    Action::AutoOff,
                    "workspace",
                    workspace.clone(),
                    format!("ws-{p}"),
                )
            }
            965..=989 => {
                ua = "coder-daemon/2.14.0".into();
                (
                    Action::AutoStart,
                    "workspace",
                    workspace.clone(),
                    format!("ws-{p}"),
                )
            }
            990..=994 => (
                Action::Cordon,
                "workspace_provider",
                "us-east-pool".into(),
                "wp-1".into(),
            ),
            _ => (
                Action::Uncordon,
                "workspace_provider",
                "us-east-pool".into(),
                "wp-1".into(),
            ),
        };
        if status == 200 && rng.gen_range(0..200) == 0 {
            status = 403;
        }
        events.push(event(
            &mut rng, time, person, p, action, rtype, &target, &rid, diff, status, &ua,
        ));
    }
    events
}

#[expect(
    clippy::too_many_arguments,
    reason = "one event's fields, named at the call site"
)]
fn event(
    rng: &mut StdRng,
    time: DateTime<Utc>,
    person: &str,
    p: usize,
    action: Action,
    resource_type: &str,
    target: &str,
    resource_id: &str,
    diff: Diff,
    status_code: u16,
    user_agent: &str,
) -> NewEvent {
    NewEvent::new(Event {
        id: uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid(),
        time,
        user: Actor {
            username: person.to_owned(),
            email: format!("{person}@example.com"),
        },
        action,
        resource_type: resource_type.to_owned(),
        resource_id: resource_id.to_owned(),
        resource_target: target.to_owned(),
        diff,
        ip: ip_of(p),
        user_agent: user_agent.to_owned(),
        status_code,
        request_id: uuid::Builder::from_random_bytes(rng.r#gen())
            .into_uuid()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_covers_every_seed_action_and_is_stable_within_an_hour() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let a = sample(now);
        assert_eq!(a.len(), SAMPLE_SIZE);
        for action in Action::ALL
            .iter()
            .filter(|a| !matches!(a, Action::Logout | Action::Export | Action::Verify))
        {
            assert!(
                a.iter().any(|e| e.event.action == *action),
                "{action} missing"
            );
        }
        assert!(
            a.iter()
                .any(|e| e.event.diff.values().any(|c| c.is_secret())),
            "a secret change"
        );
        assert!(
            a.iter()
                .any(|e| e.event.action == Action::Login && e.event.status_code == 401)
        );
        assert!(
            a.iter()
                .all(|e| e.event.time <= now && e.event.time > now - Duration::days(31))
        );
        let b = sample(now + Duration::minutes(59));
        assert_eq!(
            a.iter().map(|e| &e.content_hash).collect::<Vec<_>>(),
            b.iter().map(|e| &e.content_hash).collect::<Vec<_>>()
        );
    }
}
