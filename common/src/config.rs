//! The device configuration (`/etc/phare/player.toml`, ARCHITECTURE.md).
//!
//! Unknown keys are errors, not silently ignored: a misspelt key on a
//! screen nobody looks at would otherwise fail quietly for months. Errors
//! name the key and its line, as `toml` reports them.
//!
//! Shared with `phare`, which checks the bundles it writes for devices
//! with this very parser.

use std::path::{Path, PathBuf};

use phare_protocol::broker::{BrokerAddr, parse_broker};
use phare_protocol::topics::{Topics, is_topic_level};
use serde::Deserialize;

use crate::display::{DisplayConfig, VideoSink};
use crate::tls::MqttAuth;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub device_id: String,
    pub fleet: String,
    /// Groups in order of preference for the effective assignment.
    #[serde(default)]
    pub groups: Vec<String>,
    /// MQTT brokers in order of preference, e.g. `mqtt://127.0.0.1:1883`.
    pub brokers: Vec<String>,
    /// HTTP(S) origins that relative asset URLs are resolved against.
    #[serde(default)]
    pub origins: Vec<String>,
    /// The pinned root: a root envelope, as published.
    pub root: PathBuf,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_video_sink")]
    pub video_sink: VideoSink,
    /// Topic prefix; defaults to `phare/<fleet>/`.
    pub topic_prefix: Option<String>,
    /// Seconds between status refreshes while nothing else changes.
    #[serde(default = "default_status_interval_s")]
    pub status_interval_s: u64,
    /// While a less preferred broker serves the device, the more preferred
    /// ones are probed this often (seconds) and used again once back.
    #[serde(default = "default_primary_retry_s")]
    pub primary_retry_s: u64,
    /// Play live sources that do not authenticate their stream (`http`,
    /// `rtsp`, `udp`/`rtp` multicast, SRT without a passphrase), which
    /// anyone on the network path can replace. Off: only `https`, `rtsps`
    /// and SRT with a passphrase play; assignments with others are refused.
    #[serde(default)]
    pub allow_plaintext_live: bool,
    /// What the signed `reboot` command runs (program and arguments).
    #[serde(default = "default_reboot_command")]
    pub reboot_command: Vec<String>,
    /// The content cache: disk limits, downloads, integrity checks.
    #[serde(default)]
    pub cache: CacheConfig,
    /// The panel: size, rate, rotation, connector, sound, live fallback.
    #[serde(default)]
    pub display: DisplayConfig,
    /// What is drawn over the content: clock, ticker, logo.
    #[serde(default)]
    pub overlay: OverlayConfig,
    /// Broker credentials: TLS CA, client certificate, or a password.
    #[serde(default)]
    pub mqtt: MqttAuth,
}

/// `[overlay]`: what is drawn over the content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverlayConfig {
    /// A clock (local time, HH:MM) in the top-right corner.
    pub clock: bool,
    /// A line of text scrolling along the bottom.
    pub ticker: Option<String>,
    /// An image (PNG/JPEG) in the top-left corner.
    pub logo: Option<PathBuf>,
}

/// `[cache]`: how much disk the content may take and how it is fetched.
/// Every field has a default suited to a Raspberry Pi on a shared uplink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Most bytes of verified content kept; absent means only the
    /// free-space floor limits the cache.
    pub max_bytes: Option<u64>,
    /// Free space the cache always leaves on the file system of `data_dir`,
    /// so that logs, SQLite and the OS never run out.
    pub min_free_bytes: u64,
    /// Downloads running at once.
    pub parallel_downloads: usize,
    /// Cap on the total download rate, in bytes per second; absent = none.
    pub bandwidth_bytes_per_s: Option<u64>,
    pub connect_timeout_s: u64,
    /// Longest silence from an origin in the middle of a response.
    pub read_timeout_s: u64,
    /// A download slower than this over `throughput_window_s` is abandoned
    /// for the next mirror: a trickling server must not stall a screen.
    pub min_throughput_bytes_per_s: u64,
    pub throughput_window_s: u64,
    /// How long an origin that served wrong bytes is left alone.
    pub quarantine_s: u64,
    /// Every cached file is re-hashed at least this often to catch SD-card
    /// bit rot; 0 turns the check off.
    pub rehash_interval_s: u64,
    /// Read rate of the re-hash, so that it never competes with playback.
    pub rehash_bytes_per_s: u64,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_bytes: None,
            min_free_bytes: 256 << 20,
            parallel_downloads: 2,
            bandwidth_bytes_per_s: None,
            connect_timeout_s: 10,
            read_timeout_s: 30,
            min_throughput_bytes_per_s: 4096,
            throughput_window_s: 30,
            quarantine_s: 600,
            rehash_interval_s: 7 * 24 * 3600,
            rehash_bytes_per_s: 8 << 20,
        }
    }
}

impl CacheConfig {
    /// The first bad value, as (key, why).
    fn check(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("cache.connect_timeout_s", self.connect_timeout_s),
            ("cache.read_timeout_s", self.read_timeout_s),
            ("cache.throughput_window_s", self.throughput_window_s),
            ("cache.quarantine_s", self.quarantine_s),
            ("cache.rehash_bytes_per_s", self.rehash_bytes_per_s),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err((key, "must be at least 1".into()));
        }
        if !(1..=16).contains(&self.parallel_downloads) {
            return Err(("cache.parallel_downloads", "must be from 1 to 16".into()));
        }
        if self.max_bytes == Some(0) {
            return Err((
                "cache.max_bytes",
                "must be above 0 (omit it for no limit)".into(),
            ));
        }
        // Rates feed a token bucket counted in u32 cells.
        let rates = [
            ("cache.bandwidth_bytes_per_s", self.bandwidth_bytes_per_s),
            ("cache.rehash_bytes_per_s", Some(self.rehash_bytes_per_s)),
        ];
        for (key, rate) in rates {
            if rate.is_some_and(|r| r == 0 || r > u64::from(u32::MAX)) {
                return Err((key, format!("must be from 1 to {}", u32::MAX)));
            }
        }
        // Throttled downloads must not look like a trickling server.
        if let Some(cap) = self.bandwidth_bytes_per_s {
            let share = cap / self.parallel_downloads as u64;
            if share < self.min_throughput_bytes_per_s {
                return Err((
                    "cache.bandwidth_bytes_per_s",
                    format!(
                        "{cap} shared by {} downloads is below cache.min_throughput_bytes_per_s",
                        self.parallel_downloads
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/phare")
}

fn default_video_sink() -> VideoSink {
    VideoSink::Auto
}

fn default_status_interval_s() -> u64 {
    30
}

fn default_primary_retry_s() -> u64 {
    60
}

fn default_reboot_command() -> Vec<String> {
    vec!["systemctl".into(), "reboot".into()]
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Files named relative to the config file travel with it (a bundle
        // dropped on a boot partition).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if config.root.is_relative() {
                config.root = dir.join(&config.root);
            }
            config.mqtt.resolve_paths(dir);
        }
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if !is_topic_level(&config.device_id) {
            return Err(invalid(
                "device_id",
                "must be non-empty, without / + #".into(),
            ));
        }
        if !is_topic_level(&config.fleet) {
            return Err(invalid("fleet", "must be non-empty, without / + #".into()));
        }
        if let Some(group) = config.groups.iter().find(|g| !is_topic_level(g)) {
            return Err(invalid(
                "groups",
                format!("{group:?} must be non-empty, without / + #"),
            ));
        }
        if config.brokers.is_empty() {
            return Err(invalid("brokers", "name at least one broker".into()));
        }
        for broker in &config.brokers {
            let addr = parse_broker(broker).map_err(|m| invalid("brokers", m))?;
            config
                .mqtt
                .check_for(&addr)
                .map_err(|(key, message)| invalid(key, message))?;
        }
        config
            .mqtt
            .check()
            .map_err(|(key, message)| invalid(key, message))?;
        for origin in &config.origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(invalid(
                    "origins",
                    format!("{origin:?} is not an http(s) URL"),
                ));
            }
        }
        if config.status_interval_s == 0 {
            return Err(invalid("status_interval_s", "must be at least 1".into()));
        }
        if config.primary_retry_s == 0 {
            return Err(invalid("primary_retry_s", "must be at least 1".into()));
        }
        config
            .cache
            .check()
            .map_err(|(key, message)| invalid(key, message))?;
        config
            .display
            .check(config.video_sink)
            .map_err(|(key, message)| invalid(key, message))?;
        Ok(config)
    }

    pub fn topics(&self) -> Topics {
        match &self.topic_prefix {
            Some(prefix) => Topics::new(prefix),
            None => Topics::for_fleet(&self.fleet),
        }
    }

    pub fn broker_addrs(&self) -> Vec<BrokerAddr> {
        // Validated in `parse`.
        self.brokers
            .iter()
            .filter_map(|b| parse_broker(b).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
device_id = "lobby-1"
fleet = "acme"
groups = ["lobby"]
brokers = ["mqtt://127.0.0.1:1883", "mqtt://[::1]"]
origins = ["http://127.0.0.1:8080/media/"]
root = "/etc/phare/root.json"
video_sink = "fake"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("player.toml"))
    }

    #[test]
    fn a_good_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/phare"));
        assert_eq!(c.video_sink, VideoSink::Fake);
        assert_eq!(
            c.broker_addrs(),
            vec![
                BrokerAddr {
                    host: "127.0.0.1".into(),
                    port: 1883,
                    tls: false,
                },
                BrokerAddr {
                    host: "::1".into(),
                    port: 1883,
                    tls: false,
                }
            ]
        );
        assert_eq!(
            c.topics().status("lobby-1"),
            "phare/acme/device/lobby-1/status"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = parse(&format!("{GOOD}video_snk = \"kms\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("video_snk") && err.contains("line 9"), "{err}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let err = parse(&GOOD.replace("\"fake\"", "\"vga\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("video_sink") || err.contains("vga"), "{err}");
        let err = parse(&GOOD.replace("mqtt://127.0.0.1:1883", "tcp://x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `brokers`"), "{err}");
        let err = parse(&GOOD.replace("lobby-1", "a/b"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `device_id`"), "{err}");
    }

    #[test]
    fn plaintext_live_sources_are_refused_unless_allowed() {
        assert!(!parse(GOOD).unwrap().allow_plaintext_live);
        let c = parse(&format!("{GOOD}allow_plaintext_live = true\n")).unwrap();
        assert!(c.allow_plaintext_live);
        let err = parse(&format!("{GOOD}allow_plaintext_live = \"yes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("allow_plaintext_live") && err.contains("line 9"),
            "{err}"
        );
    }

    #[test]
    fn credentials_over_plain_mqtt_are_refused_naming_the_key() {
        let password = "[mqtt]\nusername = \"lobby-1\"\npassword_file = \"mqtt.password\"\n";
        let err = parse(&format!("{GOOD}{password}")).unwrap_err().to_string();
        assert!(
            err.contains("key `mqtt.username`") && err.contains("in clear"),
            "{err}"
        );
        let certificate =
            "[mqtt]\nca_file = \"ca.pem\"\ncert_file = \"d.pem\"\nkey_file = \"d.key\"\n";
        let err = parse(&format!("{GOOD}{certificate}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `mqtt.cert_file`"), "{err}");
        // Over mqtts:// they are what TLS is for.
        let tls = GOOD.replace("\"mqtt://", "\"mqtts://");
        parse(&format!("{tls}{certificate}")).unwrap();
    }

    #[test]
    fn the_cache_section_is_checked_key_by_key() {
        assert_eq!(parse(GOOD).unwrap().cache, CacheConfig::default());
        let c = parse(&format!(
            "{GOOD}[cache]\nmax_bytes = 1_000_000\nparallel_downloads = 4\n"
        ))
        .unwrap();
        assert_eq!(c.cache.max_bytes, Some(1_000_000));
        assert_eq!(c.cache.parallel_downloads, 4);
        assert_eq!(c.cache.read_timeout_s, 30);

        let err = parse(&format!("{GOOD}[cache]\nmax_byte = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_byte") && err.contains("line 10"), "{err}");
        for (bad, key) in [
            ("parallel_downloads = 0", "cache.parallel_downloads"),
            ("read_timeout_s = 0", "cache.read_timeout_s"),
            ("max_bytes = 0", "cache.max_bytes"),
            (
                "bandwidth_bytes_per_s = 5000",
                "cache.bandwidth_bytes_per_s",
            ),
            (
                "rehash_bytes_per_s = 5_000_000_000",
                "cache.rehash_bytes_per_s",
            ),
        ] {
            let err = parse(&format!("{GOOD}[cache]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("key `{key}`")), "{bad}: {err}");
        }
    }

    #[test]
    fn the_display_and_overlay_sections_are_checked_key_by_key() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.display, DisplayConfig::default());
        assert_eq!(c.overlay, OverlayConfig::default());
        let c = parse(&format!(
            "{GOOD}[display]\nrotation = 270\nwidth = 1280\nheight = 720\naudio = true\n\
             [overlay]\nclock = true\nticker = \"Guten Tag, Señor\"\n"
        ))
        .unwrap();
        assert_eq!(c.display.rotation, crate::display::Rotation::ThreeQuarters);
        assert_eq!(c.display.canvas(c.display.rotation), (720, 1280));
        assert!(c.display.audio && c.overlay.clock);
        assert_eq!(c.overlay.ticker.as_deref(), Some("Guten Tag, Señor"));

        for (bad, key) in [
            ("[display]\nrotation = 45", "rotation"),
            ("[display]\nrotaton = 90", "rotaton"),
            ("[display]\nfps = 0", "key `display.fps`"),
            ("[display]\nconnector = 32", "key `display.connector`"),
            (
                "[display]\nlive_fallback_timeout_ms = 5",
                "key `display.live_fallback_timeout_ms`",
            ),
            ("[overlay]\ncolck = true", "colck"),
        ] {
            let err = parse(&format!("{GOOD}{bad}\n")).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }
}
