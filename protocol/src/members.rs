//! Documents are strict: a member the protocol does not define is refused,
//! with its path and, when one is close, the member that was probably
//! meant (`duraton_ms` is a typo of `duration_ms`, not a new field that
//! devices may ignore). Later protocol versions add members explicitly:
//! members whose name starts with `x-` are extensions, allowed anywhere
//! and ignored by devices that do not know them.
//!
//! Checked on the JSON before it is read into the typed documents, so the
//! first problem reported is the misspelt member, not the member it leaves
//! missing.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// The members a JSON value may have, by kind of document.
enum Shape {
    /// An object with exactly these members (each optional here; the typed
    /// reading says which are required).
    Object(&'static [(&'static str, Shape)]),
    /// An object with any keys (ids, names), each value of this shape.
    Map(&'static Shape),
    /// A list, each element of this shape.
    List(&'static Shape),
    /// A value whose members are not checked here (scalars, free-form
    /// command arguments).
    Any,
}

use Shape::{Any, List, Map, Object};

const KEY: Shape = Object(&[("alg", Any), ("public", Any)]);
const ROLE: Shape = Object(&[("keyids", Any), ("threshold", Any)]);
const ROOT: Shape = Object(&[
    ("kind", Any),
    ("fleet", Any),
    ("version", Any),
    ("expires_at", Any),
    ("keys", Map(&KEY)),
    ("roles", Map(&ROLE)),
]);

const ASSET: Shape = Object(&[("size", Any), ("media_type", Any), ("urls", Any)]);
const ITEM: Shape = Object(&[
    ("asset", Any),
    ("live", Any),
    ("fallback", Any),
    ("duration_ms", Any),
]);
const SCHEDULE_ENTRY: Shape = Object(&[
    ("playlist", Any),
    ("days", Any),
    ("start", Any),
    ("end", Any),
    ("from", Any),
    ("until", Any),
    ("priority", Any),
]);
const POWER_WINDOW: Shape = Object(&[("days", Any), ("on", Any), ("off", Any)]);
const DISPLAY: Shape = Object(&[("rotation", Any), ("power", List(&POWER_WINDOW))]);
const ASSIGNMENT: Shape = Object(&[
    ("kind", Any),
    ("fleet", Any),
    ("target", Any),
    ("version", Any),
    ("issued_at", Any),
    ("expires_at", Any),
    ("timezone", Any),
    ("assets", Map(&ASSET)),
    ("playlists", Map(&List(&ITEM))),
    ("schedule", List(&SCHEDULE_ENTRY)),
    ("default_playlist", Any),
    ("display", DISPLAY),
]);

const ALERT: Shape = Object(&[
    ("kind", Any),
    ("fleet", Any),
    ("id", Any),
    ("version", Any),
    ("issued_at", Any),
    ("expires_at", Any),
    ("active", Any),
    ("priority", Any),
    ("targets", Any),
    ("message", Any),
    ("style", Any),
    ("asset", Any),
]);

const COMMAND: Shape = Object(&[
    ("kind", Any),
    ("fleet", Any),
    ("device", Any),
    ("id", Any),
    ("issued_at", Any),
    ("expires_at", Any),
    ("action", Any),
    ("args", Any),
]);

/// Extension members: allowed anywhere, ignored.
pub const EXTENSION_PREFIX: &str = "x-";

/// The first member of `document` (a document of `kind`) that the protocol
/// does not define, as a sentence naming its path and the likely intended
/// member; `None` if every member is known (or the kind is not a document
/// kind: the typed reading refuses it).
pub fn unknown_member(kind: &str, document: &Value) -> Option<String> {
    find(shape_of(kind)?, document, "")
}

fn shape_of(kind: &str) -> Option<&'static Shape> {
    match kind {
        "root" => Some(&ROOT),
        "assignment" => Some(&ASSIGNMENT),
        "alert" => Some(&ALERT),
        "command" => Some(&COMMAND),
        _ => None,
    }
}

/// `document` (a document of `kind`) as pretty JSON, each object's members
/// in the order this protocol lists them, then any others (extensions) in
/// name order; map keys (asset ids, playlist names) in name order. Files
/// the operator tool rewrites thus read as the protocol shows documents,
/// and the same content always gives the same bytes.
pub fn to_pretty_json(kind: &str, document: &Value) -> String {
    let ordered = Ordered {
        shape: shape_of(kind).unwrap_or(&Any),
        value: document,
    };
    serde_json::to_string_pretty(&ordered).expect("a JSON value serializes")
}

/// A value serialized with its members in the order of its shape.
struct Ordered<'a> {
    shape: &'a Shape,
    value: &'a Value,
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let within = |shape, value| Ordered { shape, value };
        match (self.shape, self.value) {
            (Object(members), Value::Object(object)) => {
                let mut map = serializer.serialize_map(Some(object.len()))?;
                for (name, shape) in members.iter() {
                    if let Some(value) = object.get(*name) {
                        map.serialize_entry(name, &within(shape, value))?;
                    }
                }
                for (name, value) in object {
                    if !members.iter().any(|(known, _)| known == name) {
                        map.serialize_entry(name, value)?;
                    }
                }
                map.end()
            }
            (Map(shape), Value::Object(object)) => serializer.collect_map(
                object
                    .iter()
                    .map(|(key, value)| (key, within(shape, value))),
            ),
            (List(shape), Value::Array(list)) => {
                serializer.collect_seq(list.iter().map(|value| within(shape, value)))
            }
            (_, value) => value.serialize(serializer),
        }
    }
}

fn find(shape: &Shape, value: &Value, path: &str) -> Option<String> {
    match (shape, value) {
        (Object(members), Value::Object(object)) => object.iter().find_map(|(name, value)| {
            let here = join(path, name);
            match members.iter().find(|(known, _)| known == name) {
                Some((_, shape)) => find(shape, value, &here),
                None if name.starts_with(EXTENSION_PREFIX) => None,
                None => Some(match closest(name, members) {
                    Some(meant) => format!(
                        "unknown member `{here}`: did you mean `{}`?",
                        join(path, meant)
                    ),
                    None => format!(
                        "unknown member `{here}` (extensions are named `{EXTENSION_PREFIX}…`)"
                    ),
                }),
            }
        }),
        (Map(shape), Value::Object(object)) => object
            .iter()
            .find_map(|(key, value)| find(shape, value, &join(path, key))),
        (List(shape), Value::Array(list)) => list
            .iter()
            .enumerate()
            .find_map(|(i, value)| find(shape, value, &format!("{path}[{i}]"))),
        // Wrong types are the typed reading's to report.
        _ => None,
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The known member `name` is most likely a typo of, if one is close.
fn closest(name: &str, members: &[(&'static str, Shape)]) -> Option<&'static str> {
    members
        .iter()
        .map(|(known, _)| (strsim::jaro_winkler(name, known), *known))
        .filter(|(similarity, _)| *similarity >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assignment() -> Value {
        json!({"kind": "assignment", "fleet": "acme", "target": "device:lobby-1",
               "version": 1, "issued_at": "2026-12-07T10:00:00Z", "expires_at": "2026-12-08T10:00:00Z",
               "assets": {"sha256:00": {"size": 1, "media_type": "image/png", "urls": []}},
               "playlists": {"main": [{"asset": "sha256:00", "duration_ms": 8000}]},
               "schedule": [{"playlist": "main", "start": "08:00", "end": "18:00"}],
               "default_playlist": "main",
               "display": {"rotation": 0, "power": [{"days": ["mon"], "on": "07:30", "off": "20:00"}]}})
    }

    #[test]
    fn a_known_document_passes() {
        assert_eq!(unknown_member("assignment", &assignment()), None);
    }

    #[test]
    fn a_typo_is_named_with_its_path_and_what_was_meant() {
        let cases = [
            (
                "/playlists/main/0",
                "duraton_ms",
                "`playlists.main[0].duraton_ms`: did you mean `playlists.main[0].duration_ms`?",
            ),
            (
                "",
                "defualt_playlist",
                "`defualt_playlist`: did you mean `default_playlist`?",
            ),
            ("/display", "displya", "`display.displya`"),
            (
                "/schedule/0",
                "priorty",
                "`schedule[0].priorty`: did you mean `schedule[0].priority`?",
            ),
            (
                "/display/power/0",
                "of",
                "`display.power[0].of`: did you mean `display.power[0].off`?",
            ),
            (
                "/assets/sha256:00",
                "mediatype",
                "`assets.sha256:00.mediatype`: did you mean `assets.sha256:00.media_type`?",
            ),
        ];
        for (at, member, expected) in cases {
            let mut document = assignment();
            document.pointer_mut(at).unwrap()[member] = json!(1);
            let found = unknown_member("assignment", &document).unwrap();
            assert!(found.contains(expected), "{member}: {found}");
        }
    }

    #[test]
    fn extensions_are_allowed_anywhere() {
        let mut document = assignment();
        document["x-note"] = json!("made by the console");
        document["playlists"]["main"][0]["x-caption"] = json!("Welcome");
        assert_eq!(unknown_member("assignment", &document), None);
    }

    #[test]
    fn pretty_json_lists_members_as_the_protocol_does() {
        let mut document = assignment();
        document["x-note"] = json!("kept");
        document["playlists"]["main"][0]["x-caption"] = json!("Welcome");
        let text = to_pretty_json("assignment", &document);
        let reread: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reread, document, "the same document");
        let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        let top = [
            "\"kind\"",
            "\"fleet\"",
            "\"target\"",
            "\"version\"",
            "\"issued_at\"",
            "\"expires_at\"",
            "\"assets\"",
            "\"size\"",
            "\"media_type\"",
            "\"urls\"",
            "\"playlists\"",
            "\"asset\"",
            "\"duration_ms\"",
            "\"x-caption\"",
            "\"schedule\"",
            "\"default_playlist\"",
            "\"display\"",
            "\"rotation\"",
            "\"power\"",
            "\"on\"",
            "\"off\"",
            "\"x-note\"",
        ];
        let positions: Vec<usize> = top.iter().map(|member| at(member)).collect();
        assert!(positions.is_sorted(), "{text}");
        assert!(
            text.starts_with("{\n  \"kind\": \"assignment\",\n"),
            "{text}"
        );
    }

    #[test]
    fn alerts_commands_and_roots_are_strict_too() {
        let alert = json!({"kind": "alert", "id": "evac", "priorty": 100});
        assert!(
            unknown_member("alert", &alert)
                .unwrap()
                .contains("did you mean `priority`")
        );
        let command =
            json!({"kind": "command", "action": "reboot", "args": {"anything": 1}, "actoin": 1});
        assert!(
            unknown_member("command", &command)
                .unwrap()
                .contains("`actoin`")
        );
        let root = json!({"kind": "root", "roles": {"publisher": {"keyids": [], "treshold": 1}}});
        assert!(
            unknown_member("root", &root)
                .unwrap()
                .contains("roles.publisher.treshold")
        );
    }
}
