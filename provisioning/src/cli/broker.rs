//! `phare broker config`: the fleet's Mosquitto setup, and how to install it.

use std::path::PathBuf;

use clap::Subcommand;
use phare_provisioning::ca::TlsPaths;
use phare_provisioning::mosquitto::{BrokerSetup, CERT_FILE, INSTALL_SCRIPT, write_config};

#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Write a ready Mosquitto 2 setup for the fleet, with its ACL.
    ///
    /// mosquitto.conf (one mutual-TLS listener, certificate names as
    /// usernames and client ids), acl (each device its own topics and its
    /// groups' assignments, the operator everything, the proof-of-play
    /// collector the screens' records), ca.pem, crl.pem (the revoked
    /// certificates), and server.pem and server.key for the given hosts;
    /// install.sh, which installs them on the broker host (Debian/Ubuntu):
    /// readable by the mosquitto user Mosquitto runs as, mosquitto.conf as
    /// <include-dir>/phare.conf, then restarts or reloads Mosquitto; and
    /// the operator's and the collector's client certificates in
    /// <keyring>/tls/ if missing. Persistence is on, where the main
    /// mosquitto.conf says (Debian: /var/lib/mosquitto/). Re-run after
    /// `phare device add` and run install.sh again.
    Config {
        /// The keyring: the fleet, its CA and devices.json.
        #[arg(long, default_value = "keys")]
        keyring: PathBuf,
        /// A DNS name or IP address devices reach the broker by; repeatable
        /// (the server certificate's names).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// The TLS listener's port.
        #[arg(long, default_value_t = 8883)]
        port: u16,
        /// Listen on this address only (default: every interface).
        #[arg(long)]
        bind: Option<String>,
        /// Where to write the files (default: <keyring>/broker/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the files will be installed on the broker host (the config
        /// names them by absolute path).
        #[arg(long, default_value = "/etc/mosquitto/phare")]
        install_dir: PathBuf,
        /// The directory the broker host's main mosquitto.conf includes
        /// (its include_dir), where install.sh puts the config as phare.conf.
        #[arg(long, default_value = "/etc/mosquitto/conf.d")]
        include_dir: PathBuf,
    },
}

pub fn run(command: BrokerCommand) -> anyhow::Result<()> {
    let BrokerCommand::Config {
        keyring,
        hosts,
        port,
        bind,
        out,
        install_dir,
        include_dir,
    } = command;
    let out = out.unwrap_or_else(|| keyring.join("broker"));
    let setup = BrokerSetup {
        hosts,
        port,
        bind,
        install_dir,
        include_dir,
    };
    let written = write_config(&keyring, &setup, &out)?;
    let o = out.display();
    println!(
        "wrote the broker's files to {o}/ ({} device(s) with group access)",
        written.devices
    );
    if !written.server_issued {
        println!("  kept {CERT_FILE}: it still covers every --host");
    }
    println!(
        "install them on the broker host (Debian/Ubuntu, Mosquitto 2), again after every run:"
    );
    println!("  sudo sh {o}/{INSTALL_SCRIPT}");
    println!(
        "(on another host, copy the folder there first, over SSH: it holds the server's \
         private key; e.g. scp -r {o} {host}:phare-broker && ssh -t {host} sudo sh \
         phare-broker/{INSTALL_SCRIPT})",
        host = setup.hosts[0]
    );
    let tls = TlsPaths::new(&keyring);
    for tool in written.tools_issued {
        println!(
            "created {}'s certificate {} (phare uses it for mqtts:// brokers)",
            tool.name(),
            tls.tool_cert(tool).display()
        );
    }
    Ok(())
}
