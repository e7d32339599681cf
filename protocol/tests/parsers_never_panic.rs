//! Property tests: whatever bytes a hostile broker sends, the envelope and
//! document parsers and the verifier return an error, never panic.

use phare_protocol::document::{AssetId, parse_document};
use phare_protocol::envelope::payload_type;
use phare_protocol::{Alert, Assignment, Command, Envelope, RoleName, Root, SigningKey};
use proptest::prelude::*;

/// A sound root to verify arbitrary envelopes against.
fn root() -> Root {
    let key = SigningKey::generate().unwrap();
    let document = serde_json::json!({
        "kind": "root", "fleet": "acme", "version": 1, "expires_at": "2099-01-01T00:00:00Z",
        "keys": {key.keyid(): {"alg": "ed25519", "public": base64_of(key.public_key())}},
        "roles": {
            "root": {"keyids": [key.keyid()], "threshold": 1},
            "publisher": {"keyids": [key.keyid()], "threshold": 1},
            "operator": {"keyids": [key.keyid()], "threshold": 1},
        }
    });
    let envelope = Envelope::sign(
        &payload_type("root"),
        &serde_json::to_vec(&document).unwrap(),
        &[&key],
    );
    Root::from_pinned(&envelope).unwrap()
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// JSON-shaped noise reaches deeper into the parsers than random bytes.
fn json_noise() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z:0-9/+=_.-]{0,70}".prop_map(|s| format!("{s:?}")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("kind"),
            Just("payloadType"),
            Just("payload"),
            Just("signatures"),
            Just("keyid"),
            Just("sig"),
            Just("version"),
            Just("assets"),
            Just("playlists"),
            Just("urls"),
            Just("size"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((keys, inner), 0..6).prop_map(|kv| {
                let fields: Vec<String> =
                    kv.into_iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

proptest! {
    #[test]
    fn envelope_parser_survives_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::from_slice(&bytes);
    }

    #[test]
    fn document_parsers_survive_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_document::<Assignment>(&bytes, "assignment");
        let _ = parse_document::<Root>(&bytes, "root");
        let _ = parse_document::<Alert>(&bytes, "alert");
        let _ = parse_document::<Command>(&bytes, "command");
    }

    #[test]
    fn parsers_and_verifier_survive_json_noise(text in json_noise()) {
        let _ = parse_document::<Assignment>(text.as_bytes(), "assignment").map(|a| a.validate());
        if let Ok(envelope) = Envelope::from_slice(text.as_bytes()) {
            let _ = root().verify(&envelope, RoleName::Publisher, "assignment");
        }
    }

    #[test]
    fn envelopes_with_arbitrary_fields_never_verify_by_accident(
        payload in "[A-Za-z0-9+/=]{0,200}",
        keyid in "[0-9a-f]{0,64}",
        sig in "[A-Za-z0-9+/=]{0,100}",
    ) {
        let envelope = Envelope {
            payload_type: payload_type("assignment"),
            payload,
            signatures: vec![phare_protocol::envelope::Signature { keyid, sig }],
        };
        prop_assert!(root().verify(&envelope, RoleName::Publisher, "assignment").is_err());
    }

    #[test]
    fn asset_ids_accept_exactly_sha256_lowercase_hex(text in "(sha256:)?[0-9a-fA-F./]{0,70}") {
        let valid = text.len() == 71
            && text.starts_with("sha256:")
            && text[7..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        prop_assert_eq!(AssetId::try_from(text.clone()).is_ok(), valid, "{}", text);
    }
}
