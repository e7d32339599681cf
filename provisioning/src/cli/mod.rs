//! The `phare` command line: the clap definitions of every command, each
//! turned into calls of the library (`phare_provisioning`), where what
//! they do lives. One module per command group, and the broker flags they
//! share (`flags`).

use clap::{Parser, Subcommand};

pub mod alert;
pub mod authoring;
pub mod broker;
pub mod device;
pub mod flags;
pub mod fleet;
pub mod keys;
pub mod pop;
pub mod sign;

use alert::AlertCommand;
use authoring::{AssetCommand, AssignmentCommand};
use broker::BrokerCommand;
use device::DeviceCommand;
use fleet::FleetCommand;
use keys::KeysCommand;
use pop::PopCommand;
use sign::{PublishArgs, SignArgs};

/// Operate a fleet of Phare screens: keys, signed documents, publishing,
/// the fleet's certificates and broker, device enrolment and commands,
/// proof of play. (The self-contained demo is `phare-demo`, `make demo`.)
#[derive(Parser)]
#[command(name = "phare", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the fleet's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Wrap a JSON document in a DSSE envelope signed by the given keys,
    /// or add signatures to an existing envelope (threshold signing by key
    /// holders in different places). A document devices would reject (a
    /// missing or misspelt field, a bad day or time, an unsafe URL, already
    /// expired, another fleet's) or a key devices would not count (another
    /// role's, retired, revoked) is refused with the reason instead.
    ///
    /// With --bump, --version or --issued-now, the payload file is first
    /// rewritten with what they set (pretty JSON, members in the
    /// protocol's order), and those exact bytes are signed: the file is
    /// what was signed.
    Sign(SignArgs),
    /// Publish signed envelopes on the topics their documents name (retained,
    /// except commands, which are used once). Each is first checked as
    /// devices will (signature threshold against the keyring's root.json,
    /// fleet, expiry, the version the broker retains): one they would
    /// refuse is not published, so it never replaces the good document the
    /// broker retains.
    Publish(PublishArgs),
    /// Write a new assignment.
    #[command(subcommand)]
    Assignment(AssignmentCommand),
    /// Describe content files, or add them to an assignment.
    #[command(subcommand)]
    Asset(AssetCommand),
    /// Emergency and information alerts over every screen of the fleet.
    #[command(subcommand)]
    Alert(AlertCommand),
    /// Proof of play: collect what screens played, export it.
    #[command(subcommand)]
    Pop(PopCommand),
    /// Watch the fleet's screens.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// Enrol screens and send them signed commands.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Set up the fleet's MQTT broker (Mosquitto).
    #[command(subcommand)]
    Broker(BrokerCommand),
}

impl Cli {
    /// Runs the command, the ones that talk to brokers on a Tokio runtime.
    pub fn run(self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new()?;
        match self.command {
            Command::Keys(command) => keys::run(command),
            Command::Sign(args) => runtime.block_on(sign::sign(args)),
            Command::Publish(args) => runtime.block_on(sign::publish(args)),
            Command::Assignment(command) => authoring::assignment(command),
            Command::Asset(command) => authoring::asset(command),
            Command::Alert(command) => runtime.block_on(alert::run(command)),
            Command::Pop(command) => runtime.block_on(pop::run(command)),
            Command::Fleet(command) => runtime.block_on(fleet::run(command)),
            Command::Device(command) => runtime.block_on(device::run(command)),
            Command::Broker(command) => broker::run(command),
        }
    }
}
