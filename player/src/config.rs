//! The device configuration (`/etc/phare/player.toml`, DESIGN.md §8).
//!
//! Unknown keys are errors, not silently ignored: a misspelt key on a
//! screen nobody looks at would otherwise fail quietly for months. Errors
//! name the key and its line, as `toml` reports them.

use std::path::{Path, PathBuf};

use phare_protocol::broker::{BrokerAddr, parse_broker};
use phare_protocol::topics::{Topics, is_topic_level};
use serde::Deserialize;

use crate::render::VideoSink;

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
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
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
            parse_broker(broker).map_err(|m| invalid("brokers", m))?;
        }
        for origin in &config.origins {
            let ok =
                reqwest::Url::parse(origin).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
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
                    port: 1883
                },
                BrokerAddr {
                    host: "::1".into(),
                    port: 1883
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
}
