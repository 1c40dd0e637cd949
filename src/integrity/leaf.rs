//! The leaf of an event in the log, version 1: its NDJSON export line, the
//! exact bytes `auditdesk export --format ndjson` writes for it, without the
//! line break (CONTRACT.md, "Integrity"). Frozen: the golden test below keeps
//! the line from drifting, and a later change to the export line must become
//! version 2 for new positions only, so that an old, untouched event never
//! looks altered.

use crate::audit::Event;
use crate::audit::store::from_row;
use crate::db::events::{EventRow, NewEventRow};

use super::merkle::{Hash, leaf_hash};

/// The leaf's bytes. A row that cannot be read as an event (written past the
/// application) still has a leaf: its columns as a JSON object under
/// `unreadable_event`, so that it is sealed and checked like any other.
pub fn leaf(row: &EventRow) -> Vec<u8> {
    match from_row(row.clone()) {
        Ok(event) => event.to_json().into_bytes(),
        Err(_) => serde_json::json!({
            "unreadable_event": {
                "id": row.event_uuid,
                "time": row.time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
                "username": row.actor_username,
                "email": row.actor_email,
                "action": row.action,
                "resource_type": row.resource_type,
                "resource_id": row.resource_id,
                "resource_target": row.resource_target,
                "diff": row.diff,
                "ip": row.ip,
                "user_agent": row.user_agent,
                "status_code": row.status_code,
                "request_id": row.request_id,
            }
        })
        .to_string()
        .into_bytes(),
    }
}

/// The leaf hash of a stored event.
pub fn hash_of(row: &EventRow) -> Hash {
    leaf_hash(&leaf(row))
}

/// The leaf hash, in hex, of an event about to be stored as `row`: the
/// event's own export line, which is the line `verify` reads back from the
/// row, since the row keeps every field exactly and times are whole
/// microseconds. Reading the row back costs about 5% of an import (measured:
/// bench/README.md, "Tenth sitting"); debug builds, and so every test, still
/// do it and check that both agree. A time finer than microseconds (which no
/// validated event has) takes the row's way.
pub fn hex_hash_of_event(event: &Event, row: &NewEventRow) -> String {
    if !event.time.timestamp_subsec_nanos().is_multiple_of(1000) {
        return hex_hash_of_new(row);
    }
    let hash = hex::encode(leaf_hash(event.to_json().as_bytes()));
    debug_assert_eq!(
        hash,
        hex_hash_of_new(row),
        "event {}: its leaf from the event and from its row differ",
        event.id
    );
    hash
}

/// The leaf hash, in hex, of an event about to be stored: computed from the
/// row as it will be stored, so that it is the hash `verify` computes when
/// it reads the row back.
pub fn hex_hash_of_new(row: &NewEventRow) -> String {
    let stored = EventRow {
        id: 0,
        event_uuid: row.event_uuid.clone(),
        time: row.time,
        actor_username: row.actor_username.clone(),
        actor_email: row.actor_email.clone(),
        action: row.action.clone(),
        resource_type: row.resource_type.clone(),
        resource_id: row.resource_id.clone(),
        resource_target: row.resource_target.clone(),
        diff: row.diff.clone(),
        ip: row.ip.clone(),
        user_agent: row.user_agent.clone(),
        status_code: row.status_code,
        request_id: row.request_id.clone(),
        content_hash: row.content_hash.clone(),
        received_at: row.received_at,
    };
    hex::encode(hash_of(&stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event's leaf, byte for byte, and its hash: version 1 frozen.
    #[test]
    fn the_v1_leaf_of_an_event_is_its_ndjson_line_byte_for_byte() {
        let time = chrono::NaiveDate::from_ymd_opt(2026, 3, 1)
            .unwrap()
            .and_hms_micro_opt(12, 34, 56, 789_000)
            .unwrap();
        let row = EventRow {
            id: 41,
            event_uuid: "0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8".into(),
            time,
            actor_username: "alice".into(),
            actor_email: "alice@example.com".into(),
            action: "write".into(),
            resource_type: "oauth_configs".into(),
            resource_id: "oc-12".into(),
            resource_target: "Git\u{202e}Hub\t".into(),
            diff: r#"{"client_secret":{"secret":true},"description":{"old":"old","new":8,"secret":false}}"#.into(),
            ip: "203.0.113.9".into(),
            user_agent: "Mozilla/5.0".into(),
            status_code: 200,
            request_id: "9c7c7377-79a2-4903-bbe3-3b243eae0032".into(),
            content_hash: "ignored".into(),
            received_at: time,
        };
        let line = String::from_utf8(leaf(&row)).unwrap();
        // The bidi override stays as it is (JSON needs no escape for it); the
        // tab is escaped as JSON escapes it.
        let expected = r#"{"id":"0bd4a990-0640-4e0f-a5b8-fd4b32fa2de8","time":"2026-03-01T12:34:56.789Z","user":{"username":"alice","email":"alice@example.com"},"action":"write","resource_type":"oauth_configs","resource_id":"oc-12","resource_target":"Git@RLO@Hub\t","diff":{"client_secret":{"secret":true},"description":{"old":"old","new":8,"secret":false}},"ip":"203.0.113.9","user_agent":"Mozilla/5.0","status_code":200,"request_id":"9c7c7377-79a2-4903-bbe3-3b243eae0032"}"#
            .replace("@RLO@", "\u{202e}");
        assert_eq!(line, expected);
        assert_eq!(
            hex::encode(hash_of(&row)),
            hex::encode(leaf_hash(line.as_bytes()))
        );
        // The database id and the arrival time are not part of the event.
        let elsewhere = EventRow {
            id: 7,
            received_at: time + chrono::Duration::days(1),
            ..row.clone()
        };
        assert_eq!(hash_of(&elsewhere), hash_of(&row));
        assert_ne!(
            hash_of(&EventRow {
                ip: "203.0.113.10".into(),
                ..row
            }),
            hash_of(&elsewhere)
        );
    }
}
