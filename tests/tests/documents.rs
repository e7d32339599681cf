//! Documents checked before they leave: `phare publish`, run as admins run
//! it against a real Mosquitto, refuses an envelope devices would refuse,
//! and the good document the broker retains stays for screens enrolled
//! later.

use std::path::Path;
use std::process::Command;

use jiff::{SignedDuration, Timestamp};
use phare_protocol::Envelope;
use phare_protocol::envelope::payload_type;
use phare_provisioning::publish::route_for;
use phare_tests::*;
use serde_json::Value;

/// Runs `phare publish` of one envelope file; returns whether it published
/// and what it said.
fn phare_publish(broker: &Mosquitto, keyring: &Path, envelope: &Envelope) -> (bool, String) {
    let file = keyring.parent().unwrap().join("document.env.json");
    std::fs::write(&file, envelope.to_json()).unwrap();
    let output = Command::new(phare_binary())
        .arg("publish")
        .args(["--broker", &broker.url(), "--keyring"])
        .arg(keyring)
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_devices_would_refuse_never_replaces_the_retained_one() {
    let broker = Mosquitto::start();
    let fleet = Fleet::new();
    let keyring = fleet.dir.path().join("keys");
    let good = fleet.assignment(1, &[]);
    let (published, said) = phare_publish(&broker, &keyring, &fleet.sign(&good));
    assert!(published, "{said}");
    // Nobody is enrolled or online: the target reaches no screen, and the
    // admin is told (a typo'd group looks the same).
    assert!(said.contains("it reaches 0 screen(s)"), "{said}");
    assert!(said.contains("matches no screen"), "{said}");

    let now = Timestamp::now();
    let mut expired = fleet.assignment(2, &[]);
    expired["issued_at"] = now
        .checked_sub(SignedDuration::from_hours(48))
        .unwrap()
        .to_string()
        .into();
    expired["expires_at"] = now
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap()
        .to_string()
        .into();
    let mut other_fleet = fleet.assignment(2, &[]);
    other_fleet["fleet"] = "acm".into();
    let operator_signed = {
        let body = serde_json::to_vec(&fleet.assignment(2, &[])).unwrap();
        let operator = fleet.keys.held_keys(phare_protocol::RoleName::Operator);
        Envelope::sign(&payload_type("assignment"), &body, &operator)
    };
    let mut rewritten = fleet.assignment(1, &[]);
    rewritten["timezone"] = "UTC".into();
    let refusals = [
        (fleet.sign(&rewritten), "the broker retains version 1"),
        (fleet.sign(&expired), "has passed"),
        (
            fleet.sign(&other_fleet),
            "fleet \"acm\" is not this keyring's fleet",
        ),
        (operator_signed, "carries 0 of the 1 publisher signatures"),
    ];
    for (envelope, reason) in refusals {
        let (published, said) = phare_publish(&broker, &keyring, &envelope);
        assert!(!published, "published: {said}");
        assert!(said.contains("Nothing was published"), "{said}");
        assert!(said.contains(reason), "{reason}: {said}");
    }

    // A screen enrolled now still finds version 1.
    let topic = route_for(&fleet.sign(&good), None).unwrap().topic;
    let retained = Subscriber::new(&broker, &topic).await;
    wait_for(|| !retained.json().is_empty(), "the retained assignment");
    let envelope = Envelope::from_slice(&serde_json::to_vec(&retained.json()[0]).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&envelope.payload_bytes().unwrap()).unwrap();
    assert_eq!(payload["version"], 1);
}
