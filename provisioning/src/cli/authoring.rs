//! Writing assignments with the tool rather than by hand: `phare
//! assignment new`, `phare asset add [--into]`, and the version and
//! `issued_at` that `phare sign` sets when asked.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::{SignedDuration, Timestamp};
use phare_common::tls::MqttAuth;
use phare_protocol::topics::Topics;
use phare_provisioning::authoring::{self, Change, Skeleton, Stamp};
use phare_provisioning::connect::Endpoint;
use phare_provisioning::keys::Keyring;
use phare_provisioning::{asset, publish};

#[derive(Subcommand)]
pub enum AssignmentCommand {
    /// Write a new assignment: version 1, issued now, and one empty
    /// playlist, `main`, as its default. It is valid as it is (a screen
    /// shows its status screen for an empty playlist); fill it with
    /// `phare asset add FILE --into FILE`, then `phare sign`.
    New {
        /// `device:<id>` or `group:<name>`: the screens it is for.
        #[arg(long)]
        target: String,
        /// The fleet (default: the keyring's).
        #[arg(long)]
        fleet: Option<String>,
        /// The keyring whose fleet it is, when --fleet is not given.
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// The IANA time zone its schedule is read in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Days until it expires: devices refuse it as new from then on (one
        /// already playing keeps playing, reported stale).
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Write it here (never over an existing file) instead of standard
        /// output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum AssetCommand {
    /// Describe a content file: its sha256 id, size, media type and URLs.
    /// Printed as JSON, or with --into added to an assignment file.
    Add {
        /// The content file (its name is its URL's last part).
        file: PathBuf,
        /// Origin base URL the file is (or will be) uploaded to; repeatable.
        /// None: the file's name alone, which each device resolves against
        /// the origins of its config.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Media type, when the file extension does not tell.
        #[arg(long)]
        media_type: Option<String>,
        /// Add it to this assignment file instead of printing it: its
        /// entry in `assets` and an item playing it at the end of
        /// --playlist, and the file is rewritten (pretty, members in the
        /// protocol's order). Adding a file again adds nothing: its entry
        /// takes the new URLs, and the playlist's item that plays it the
        /// new --duration-ms.
        #[arg(long, value_name = "ASSIGNMENT")]
        into: Option<PathBuf>,
        /// The playlist to append it to, created if missing (default: the
        /// assignment's default playlist).
        #[arg(long, requires = "into")]
        playlist: Option<String>,
        /// How long the item shows, in milliseconds: required for images;
        /// a video plays to its end without it.
        #[arg(long, requires = "into")]
        duration_ms: Option<u64>,
    },
}

/// `phare sign`'s flags that set the payload's version and `issued_at`.
#[derive(Args)]
pub struct StampFlags {
    /// Set `version` to one more than the document's retained on the
    /// --broker(s), 1 if none is (read, not verified), and `issued_at` to
    /// now. Over mqtts:// the TLS files of --keyring (else keys/) are
    /// used: tls/ca.pem, tls/operator.pem and tls/operator.key.
    #[arg(long, requires = "brokers", conflicts_with_all = ["set_version", "add_to"])]
    bump: bool,
    /// Broker URL to read the retained version from, with --bump;
    /// repeatable (the highest counts).
    #[arg(long = "broker", requires = "bump")]
    brokers: Vec<String>,
    /// Topic prefix, with --bump, if the fleet does not use `phare/<fleet>/`.
    #[arg(long, requires = "bump")]
    prefix: Option<String>,
    /// Set `version` to N (offline).
    #[arg(long = "version", value_name = "N", conflicts_with = "add_to")]
    set_version: Option<u64>,
    /// Set `issued_at` to now.
    #[arg(long, conflicts_with = "add_to")]
    issued_now: bool,
}

impl StampFlags {
    /// Sets what the flags ask for in `body`, the payload of `kind` read
    /// from `payload`, and rewrites that file with it; returns the bytes to
    /// sign (`body` itself when nothing is asked). Says on standard error
    /// what was set (standard output may be the envelope).
    pub async fn apply(
        &self,
        payload: &Path,
        kind: &str,
        body: Vec<u8>,
        keyring: &Path,
    ) -> anyhow::Result<Vec<u8>> {
        if !self.bump && self.set_version.is_none() && !self.issued_now {
            return Ok(body);
        }
        authoring::check_stampable(kind)?;
        let mut document: serde_json::Value =
            serde_json::from_slice(&body).context("the payload is not JSON")?;
        let version = match self.bump {
            true => Some(self.next_version(&document, keyring).await?),
            false => self.set_version,
        };
        let issued_at =
            (self.bump || self.issued_now).then(|| authoring::whole_seconds(Timestamp::now()));
        authoring::stamp(&mut document, kind, Stamp { version, issued_at })?;
        let bytes = authoring::write_document(payload, kind, &document)?;
        let mut set = Vec::new();
        if let Some(version) = version {
            set.push(format!("version {version}"));
        }
        if let Some(issued_at) = issued_at {
            set.push(format!("issued_at {issued_at}"));
        }
        eprintln!(
            "set {} in {} (rewritten; it is what is signed)",
            set.join(", "),
            payload.display()
        );
        Ok(bytes)
    }

    /// One more than the highest version retained on the brokers.
    async fn next_version(
        &self,
        document: &serde_json::Value,
        keyring: &Path,
    ) -> anyhow::Result<u64> {
        let topic = publish::route_of(document, self.prefix.as_deref())?.topic;
        let mut highest = 0;
        for url in &self.brokers {
            let broker = Endpoint::new(url, &MqttAuth::default(), keyring);
            match authoring::retained_version(&broker, &topic).await? {
                Some(version) => {
                    eprintln!("{url} retains version {version} on {topic}");
                    highest = highest.max(version);
                }
                None => eprintln!("{url} retains nothing on {topic}"),
            }
        }
        highest
            .checked_add(1)
            .context("the retained version is the highest there is")
    }
}

pub fn assignment(command: AssignmentCommand) -> anyhow::Result<()> {
    let AssignmentCommand::New {
        target,
        fleet,
        keyring,
        timezone,
        days,
        output,
    } = command;
    let fleet = match fleet {
        Some(fleet) => fleet,
        None => Keyring::open(&keyring)
            .context("give --fleet, or --keyring to read it from")?
            .root()
            .fleet
            .clone(),
    };
    let skeleton = Skeleton {
        fleet,
        target,
        timezone,
        lasts: SignedDuration::from_hours(days.checked_mul(24).context("--days is too large")?),
    };
    let document = authoring::new_assignment(&skeleton, Timestamp::now())?;
    let bytes = authoring::document_bytes("assignment", &document);
    match output {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| {
                    format!("creating {} (never over an existing file)", path.display())
                })?;
            file.write_all(&bytes)
                .with_context(|| format!("writing {}", path.display()))?;
            let topic = Topics::for_fleet(&skeleton.fleet).assignment_for_target(&skeleton.target);
            println!(
                "wrote {} (version 1, for {}, published on {})",
                path.display(),
                skeleton.target,
                topic.unwrap_or_default()
            );
            println!(
                "add content: phare asset add FILE --into {}",
                path.display()
            );
        }
        None => print!("{}", String::from_utf8(bytes)?),
    }
    Ok(())
}

pub fn asset(command: AssetCommand) -> anyhow::Result<()> {
    let AssetCommand::Add {
        file,
        origins,
        media_type,
        into,
        playlist,
        duration_ms,
    } = command;
    let (id, entry) = asset::entry_for(&file, &origins, media_type.as_deref())?;
    let Some(into) = into else {
        let json = serde_json::json!({ id.to_string(): entry });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    };
    let mut document = authoring::read_document(&into)?;
    let added = authoring::add_asset(&mut document, &id, &entry, playlist.as_deref(), duration_ms)
        .with_context(|| format!("adding {} to {}", file.display(), into.display()))?;
    authoring::write_document(&into, "assignment", &document)?;
    let asset = match added.asset {
        Change::Added => "added",
        Change::Updated => "updated the URLs of",
        Change::Unchanged => "already had",
    };
    println!("{}: {asset} {id} ({})", into.display(), file.display());
    if added.playlist_created {
        println!("created playlist {:?}", added.playlist);
    }
    let item = match added.item {
        Change::Added => "appended an item playing it to",
        Change::Updated => "set the duration of its item in",
        Change::Unchanged => "it is already in",
    };
    println!("{item} playlist {:?}", added.playlist);
    if !added.playable {
        println!(
            "note: playlist {:?} is not the default and no schedule entry names it: \
             it does not play until one does",
            added.playlist
        );
    }
    Ok(())
}
