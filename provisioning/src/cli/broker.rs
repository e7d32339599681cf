//! `phare broker config`: the fleet's Mosquitto setup, and how to install it.

use std::path::PathBuf;

use clap::Subcommand;
use phare_provisioning::ca::TlsPaths;
use phare_provisioning::mosquitto::{
    ACL_FILE, BrokerSetup, CA_FILE, CERT_FILE, CONF_FILE, CRL_FILE, KEY_FILE, write_config,
};

#[derive(Subcommand)]
pub enum BrokerCommand {
    /// Write a ready Mosquitto 2 setup for the fleet, with its ACL.
    ///
    /// mosquitto.conf (one mutual-TLS listener, certificate names as
    /// usernames and client ids), acl (each device its own topics and its
    /// groups' assignments, the operator everything, the proof-of-play
    /// collector the screens' records), ca.pem, crl.pem (the revoked
    /// certificates), and server.pem and server.key for the given hosts;
    /// and the operator's and the collector's client certificates in
    /// <keyring>/tls/ if missing. Re-run after `phare device add`, then
    /// reload mosquitto (SIGHUP).
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
    } = command;
    let out = out.unwrap_or_else(|| keyring.join("broker"));
    let setup = BrokerSetup {
        hosts,
        port,
        bind,
        install_dir,
    };
    let written = write_config(&keyring, &setup, &out)?;
    let (o, i) = (out.display(), setup.install_dir.display());
    println!(
        "wrote the broker's files to {o}/ ({} device(s) with group access)",
        written.devices
    );
    if !written.server_issued {
        println!("  kept {CERT_FILE}: it still covers every --host");
    }
    println!("install them on the broker host (Debian/Ubuntu, Mosquitto 2):");
    println!("  sudo install -d -m 755 {i}");
    println!(
        "  sudo install -m 644 {o}/{CA_FILE} {o}/{CRL_FILE} {o}/{CERT_FILE} {o}/{ACL_FILE} {i}/"
    );
    println!("  sudo install -m 600 -o mosquitto {o}/{KEY_FILE} {i}/");
    println!("  sudo install -m 644 {o}/{CONF_FILE} /etc/mosquitto/conf.d/phare.conf");
    println!("  sudo systemctl restart mosquitto");
    println!(
        "after each `phare device add`: run this again, install {ACL_FILE} again, and \
         `sudo systemctl reload mosquitto` (SIGHUP re-reads the ACL)"
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
