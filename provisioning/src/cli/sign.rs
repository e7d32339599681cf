//! `phare sign` and `phare publish`: a document leaves only once it passes
//! what devices check ([`crate::preflight`]), judged against the fleet's
//! current root (`root.json`) and this machine's clock.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use jiff::Timestamp;
use phare_protocol::envelope::payload_type;
use phare_protocol::{Envelope, Root};

use super::authoring::StampFlags;
use super::flags::BrokerAuth;
use phare_provisioning::keys::{self, Keyring, ROOT_ENVELOPE_FILE};
use phare_provisioning::{alert, authoring, fleet, preflight, publish, registry, terminal};

/// What `phare sign` was asked.
#[derive(Args)]
pub struct SignArgs {
    /// Document kind: root, assignment, alert or command (read from the
    /// payload when omitted).
    #[arg(long)]
    kind: Option<String>,
    /// PKCS#8 private key file; repeatable.
    #[arg(long = "key")]
    key_files: Vec<PathBuf>,
    /// Sign with every key held in this keyring for the kind's role.
    #[arg(long)]
    keyring: Option<PathBuf>,
    /// The fleet's current root (root.json) that the keys and the fleet
    /// are checked against [default: <keyring>/root.json, else
    /// keys/root.json].
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
    /// Add the signatures to this existing envelope (rewritten in place
    /// unless -o is given) instead of signing a payload.
    #[arg(long, conflicts_with = "payload")]
    add_to: Option<PathBuf>,
    /// The JSON payload to sign (its exact bytes are signed).
    #[arg(required_unless_present = "add_to")]
    payload: Option<PathBuf>,
    /// Write the envelope here instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// `--bump`, `--version`, `--issued-now`: set in the payload file
    /// before it is checked and signed.
    #[command(flatten)]
    stamp: StampFlags,
}

/// The root the documents are judged by: `--root`, else the keyring's
/// `root.json`, else `keys/root.json` when run beside a keyring; none when
/// a key holder signs elsewhere without it (then keys and fleet go
/// unchecked, with a warning).
fn judging_root(keyring: Option<&Path>, root: Option<&Path>) -> anyhow::Result<Option<Root>> {
    let beside = Path::new("keys").join(ROOT_ENVELOPE_FILE);
    let path = match (root, keyring) {
        (Some(file), _) => file.to_path_buf(),
        (None, Some(dir)) => dir.join(ROOT_ENVELOPE_FILE),
        (None, None) if beside.exists() => beside,
        (None, None) => return Ok(None),
    };
    keys::read_root(&path).map(Some)
}

pub async fn sign(request: SignArgs) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let root = judging_root(request.keyring.as_deref(), request.root.as_deref())?;
    if root.is_none() {
        eprintln!(
            "warning: no root.json to check the keys and the fleet against: give --root \
             <root.json> (or --keyring <dir>)"
        );
    }
    let fleet = root.as_ref().map(|r| r.fleet.as_str());
    let signers = request
        .key_files
        .iter()
        .map(|p| keys::read_private_key(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut envelope, kind, source) = match (&request.add_to, &request.payload) {
        (Some(existing), _) => {
            let envelope = Envelope::from_slice(&std::fs::read(existing)?)?;
            let kind = document_kind(&envelope.payload_bytes()?, request.kind.as_deref())?;
            (envelope, kind, existing)
        }
        (None, Some(payload)) => {
            let body =
                std::fs::read(payload).with_context(|| format!("reading {}", payload.display()))?;
            let kind = document_kind(&body, request.kind.as_deref())?;
            let tls_keyring = request.keyring.as_deref().unwrap_or(Path::new("keys"));
            let body = request
                .stamp
                .apply(payload, &kind, body, tls_keyring)
                .await?;
            (
                Envelope::sign(&payload_type(&kind), &body, &[]),
                kind,
                payload,
            )
        }
        (None, None) => unreachable!("clap requires a payload without --add-to"),
    };
    let body = envelope.payload_bytes()?;
    let refuse = |why: anyhow::Error| {
        anyhow::anyhow!(
            "not signing {}: devices would refuse it: {why:#}",
            source.display()
        )
    };
    preflight::check_payload(&kind, &body, fleet, now).map_err(refuse)?;
    for warning in phare_protocol::document::payload_warnings(&kind, &body) {
        eprintln!("warning: {warning}");
    }
    let ring = request.keyring.as_deref().map(Keyring::open).transpose()?;
    let held = match &ring {
        Some(ring) => ring.held_keys(keys::signing_role(&kind)?),
        None => Vec::new(),
    };
    anyhow::ensure!(
        !signers.is_empty() || !held.is_empty(),
        "give --key or a --keyring holding keys of the role"
    );
    for key in signers.iter().chain(held) {
        if let Some(root) = &root {
            preflight::check_signer(&kind, &body, key, root).map_err(refuse)?;
        }
        envelope.add_signature(key);
    }
    if let Some(root) = root.as_ref().filter(|_| kind != "root") {
        let count = preflight::count_signatures(&envelope, &kind, root)?;
        if count.valid < count.threshold {
            eprintln!(
                "signed by {} of the {} {} keys devices require: the others add theirs with \
                 `phare sign --add-to <envelope> --key <key>`",
                count.valid,
                count.threshold,
                keys::signing_role(&kind)?.as_str()
            );
        }
    }
    match request.output.or(request.add_to) {
        Some(path) => std::fs::write(&path, envelope.to_json())?,
        None => println!("{}", envelope.to_json()),
    }
    Ok(())
}

/// What `phare publish` was asked.
#[derive(Args)]
pub struct PublishArgs {
    /// Broker URL (mqtt:// or mqtts://host:port); repeat to publish to
    /// every broker.
    #[arg(long = "broker", required = true)]
    brokers: Vec<String>,
    /// The keyring whose root.json judges the envelopes, and whose TLS
    /// files authenticate to mqtts:// brokers.
    #[arg(long, default_value = "keys")]
    keyring: PathBuf,
    #[command(flatten)]
    auth: BrokerAuth,
    /// Topic prefix, if the fleet does not use `phare/<fleet>/`.
    #[arg(long)]
    prefix: Option<String>,
    /// Envelope files, published in the order given (e.g. a root chain).
    #[arg(required = true)]
    envelopes: Vec<PathBuf>,
}

/// Publishes each envelope once it is one devices take: all of them are
/// judged before the first goes out, so a bad one in a chain publishes
/// nothing.
pub async fn publish(request: PublishArgs) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let root_file = request.keyring.join(ROOT_ENVELOPE_FILE);
    let root = keys::read_root(&root_file).context(
        "cannot check what devices would refuse: give --keyring, the folder with root.json",
    )?;
    let mut checked = Vec::new();
    for path in &request.envelopes {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let envelope = Envelope::from_slice(&bytes)?;
        let previous = previous_root(&envelope, &request.keyring)?;
        let kind =
            preflight::check_envelope(&envelope, &root, previous.as_ref(), now).map_err(|why| {
                anyhow::anyhow!(
                    "not publishing {}: devices would refuse it: {why:#}. Nothing was \
                     published: what the broker retains stays as it was",
                    path.display()
                )
            })?;
        let route = publish::route_for(&envelope, request.prefix.as_deref())?;
        checked.push((path, bytes, envelope, kind, route));
    }
    for (path, bytes, envelope, kind, route) in checked {
        for broker in &request.brokers {
            let endpoint = request.auth.endpoint(broker, &request.keyring);
            if route.retain && kind != "root" {
                let held = authoring::retained_envelope(&endpoint, &route.topic).await?;
                if let Some(held) = held {
                    preflight::check_supersedes(&envelope, &held, &root).map_err(|why| {
                        anyhow::anyhow!(
                            "not publishing {} to {broker}: {why:#}. Nothing was published \
                             there: what it retains stays as it was",
                            path.display()
                        )
                    })?;
                }
            }
            publish::publish(&endpoint, &route.topic, bytes.clone(), route.retain).await?;
            println!("published {} to {broker} {}", path.display(), route.topic);
        }
        if kind == "assignment" {
            let payload: serde_json::Value = serde_json::from_slice(&envelope.payload_bytes()?)?;
            let target = payload["target"].as_str().unwrap_or_default().to_string();
            report_reach(
                Some(&[target]),
                &root.fleet,
                &request.keyring,
                &request.auth,
                &request.brokers[0],
            )
            .await;
        }
    }
    Ok(())
}

/// The root devices hold before the root `envelope` carries (none for
/// version 1 or another kind), from the keyring's `root-<N>.json`.
fn previous_root(envelope: &Envelope, keyring: &Path) -> anyhow::Result<Option<Root>> {
    let payload: serde_json::Value = serde_json::from_slice(&envelope.payload_bytes()?)?;
    let version = match (payload["kind"].as_str(), payload["version"].as_u64()) {
        (Some("root"), Some(version)) if version > 1 => version,
        _ => return Ok(None),
    };
    let file = keyring.join(format!("root-{}.json", version - 1));
    keys::read_root(&file).map(Some).with_context(|| {
        format!(
            "root version {version} is judged by version {}",
            version - 1
        )
    })
}

/// The `kind` of a payload, checked against `--kind` when given.
pub fn document_kind(payload: &[u8], expected: Option<&str>) -> anyhow::Result<String> {
    let document: serde_json::Value =
        serde_json::from_slice(payload).context("the payload is not JSON")?;
    let kind = document
        .get("kind")
        .and_then(|k| k.as_str())
        .context("the payload has no \"kind\"")?;
    if let Some(expected) = expected {
        anyhow::ensure!(
            kind == expected,
            "the payload's \"kind\" is {kind:?}, not {expected:?}"
        );
    }
    Ok(kind.to_string())
}

/// Says which screens `targets` reach (`None`: the whole fleet), from the
/// registry and the retained statuses; warns about targets that match
/// none. The document is out already: what cannot be read here is only a
/// warning.
pub async fn report_reach(
    targets: Option<&[String]>,
    fleet_name: &str,
    keyring: &Path,
    auth: &BrokerAuth,
    broker: &str,
) {
    let registry = registry::Registry::load(keyring).unwrap_or_else(|e| {
        eprintln!("warning: {e:#}");
        registry::Registry::default()
    });
    let topics = phare_protocol::topics::Topics::for_fleet(fleet_name);
    let endpoint = auth.endpoint(broker, keyring);
    let quiet = std::time::Duration::from_millis(500);
    let statuses = match fleet::collect(&endpoint, &topics, quiet).await {
        Ok(collected) => collected.statuses,
        Err(e) => {
            eprintln!("warning: cannot read the screens' statuses: {e:#}");
            Vec::new()
        }
    };
    let reach = alert::reach(targets, &registry, &statuses);
    let names: Vec<&str> = reach.screens.iter().map(String::as_str).collect();
    println!(
        "it reaches {} screen(s), {} of them online: {}",
        reach.screens.len(),
        reach.online.len(),
        terminal::printable(&names.join(", "), 2000)
    );
    for target in &reach.unmatched {
        eprintln!(
            "warning: target {} matches no screen (not in {}, no status on the broker): a typo?",
            terminal::printable(target, 200),
            registry::Registry::path(keyring).display()
        );
    }
}
