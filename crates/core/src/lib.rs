//! Shared vocabulary of nimbus: resource IDs, timestamps and the server configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::Rng;

pub mod metrics;
use serde::{Deserialize, Serialize};

/// A new AWS-style resource ID: `prefix-` followed by 17 lowercase hex digits (`vol-0a1b…`).
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let digits: String = (0..17)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect();
    format!("{prefix}-{digits}")
}

/// A new random ID in the UUID form AWS uses for request IDs, groups and activities.
pub fn new_uuid() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `id` has the shape `prefix-<8 or 17 lowercase hex digits>`, as AWS IDs do.
pub fn is_valid_id(id: &str, prefix: &str) -> bool {
    match id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        Some(hex) => {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// ISO 8601 UTC with milliseconds, as EC2 writes timestamps: `2026-11-23T06:20:00.000Z`.
pub fn iso8601_millis(unix_millis: i64) -> String {
    iso8601(
        time::OffsetDateTime::from_unix_timestamp_nanos(unix_millis as i128 * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

/// `at` in ISO 8601 UTC with milliseconds, whatever its offset.
pub fn iso8601(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// One access key the API accepts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// When set, requests must carry this value as `X-Amz-Security-Token` (temporary credentials).
    #[serde(default)]
    pub session_token: Option<String>,
}

/// Server configuration, read from a TOML file; every field has a default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub account_id: String,
    pub zones: Vec<String>,
    pub credentials: Vec<Credential>,
    /// Optional TCP address for the NBD server, besides the unix socket in the data dir.
    pub nbd_listen: Option<SocketAddr>,
    /// Where snapshot chunks go: unset means `<data_dir>/objects`.
    pub object_store: Option<ObjectStoreConfig>,
    /// Serve on a non-loopback address although the well-known `test`/`test` credentials
    /// are accepted (protected mode, see [`Config::check_protected_mode`]).
    pub allow_default_credentials: bool,
    /// Where public and elastic IPs come from; the host routes this block to the VPCs.
    pub public_ip_pool: String,
    /// Networks beyond the host that route `public_ip_pool` back to it (a lab router):
    /// traffic from public and elastic IPs (NAT gateways' too) to them keeps its public
    /// source, as the internet sees an EC2 address. Elsewhere the host masquerades it.
    pub public_ip_routed_networks: Vec<String>,
    /// Seconds between two readings of the measured metrics (CPU, network, disk). AWS's
    /// resolutions (5 minutes, 1 minute with detailed monitoring) are aggregated from them.
    pub metrics_interval_secs: u64,
    /// The account's limits (the `[limits]` table); each defaults to AWS's.
    pub limits: Limits,
    /// Where load balancers' DNS names are written so that they resolve on this host (a
    /// marked block per server); empty: nowhere.
    pub hosts_file: String,
    /// What guests reach of the host (the `[network]` table).
    pub network: NetworkConfig,
}

/// What guests with a way out (a public IP) may reach of the host: by default nothing of
/// the host itself and of the networks attached to it, only what lies beyond its gateways
/// (`docs/security.md`, *Guests and the host's networks*).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// The operator's exceptions: CIDRs of the host's own addresses or of its attached or
    /// private networks that guests may reach (a proxy, a package mirror on the LAN).
    pub reachable_from_guests: Vec<ipnet::Ipv4Net>,
}

/// Account limits, AWS's defaults unless the config says otherwise. Exceeding one answers
/// AWS's code for it (`docs/compatibility.md`, *Limits*).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Live (not terminated) instances.
    pub instances: u64,
    pub vpcs: u64,
    pub subnets_per_vpc: u64,
    pub security_groups_per_vpc: u64,
    pub inbound_rules_per_group: u64,
    pub outbound_rules_per_group: u64,
    pub groups_per_interface: u64,
    pub elastic_ips: u64,
    pub network_interfaces: u64,
    pub volumes: u64,
    /// Total size of the volumes of one type (gp2, gp3, io1…), as AWS's per-type storage quota.
    pub volume_storage_gib_per_type: u64,
    pub snapshots: u64,
    pub iam_roles: u64,
    pub instance_profiles: u64,
    /// Volumes are thin: CreateVolume is refused while the data dir's file system has less
    /// free space than this, so the store and running volumes keep room to grow.
    pub free_disk_reserve_gib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            instances: 20,
            vpcs: 5,
            subnets_per_vpc: 200,
            security_groups_per_vpc: 500,
            inbound_rules_per_group: 60,
            outbound_rules_per_group: 60,
            groups_per_interface: 5,
            elastic_ips: 5,
            network_interfaces: 5000,
            volumes: 5000,
            volume_storage_gib_per_type: 50 * 1024,
            snapshots: 100_000,
            iam_roles: 1000,
            instance_profiles: 1000,
            free_disk_reserve_gib: 1,
        }
    }
}

/// An S3-compatible bucket for snapshot data.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreConfig {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4566)),
            data_dir: default_data_dir(),
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            zones: ["a", "b", "c"]
                .iter()
                .map(|z| format!("us-east-1{z}"))
                .collect(),
            credentials: vec![Credential {
                access_key_id: "test".into(),
                secret_access_key: "test".into(),
                session_token: None,
            }],
            nbd_listen: None,
            object_store: None,
            allow_default_credentials: false,
            public_ip_pool: "198.19.0.0/16".into(),
            public_ip_routed_networks: Vec::new(),
            metrics_interval_secs: 10,
            limits: Limits::default(),
            hosts_file: "/etc/hosts".into(),
            network: NetworkConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error(
        "refusing to listen on {listen} with the default credentials test/test, which anyone \
         who can reach it knows: configure your own [[credentials]], listen on a loopback \
         address, or pass --allow-default-credentials (allow_default_credentials = true)"
    )]
    DefaultCredentialsExposed { listen: SocketAddr },
    #[error(
        "refusing to serve NBD on {listen}: the NBD listener has no authentication yet, so \
         every volume would be open to anyone who can reach it; use a loopback address"
    )]
    UnauthenticatedNbd { listen: SocketAddr },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Protected mode, as Redis has it: the default credentials are fine on a loopback
    /// address, but on any other address anyone who can reach nimbus would know them.
    pub fn check_protected_mode(&self) -> Result<(), ConfigError> {
        let default_accepted = self
            .credentials
            .iter()
            .any(|c| c.access_key_id == "test" && c.secret_access_key == "test");
        if default_accepted && !self.listen.ip().is_loopback() && !self.allow_default_credentials {
            return Err(ConfigError::DefaultCredentialsExposed {
                listen: self.listen,
            });
        }
        match self.nbd_listen {
            Some(listen) if !listen.ip().is_loopback() => {
                Err(ConfigError::UnauthenticatedNbd { listen })
            }
            _ => Ok(()),
        }
    }
}

/// `~/.local/share/nimbus`, or `./nimbus-data` when there is no home directory.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".local/share/nimbus"))
        .unwrap_or_else(|| PathBuf::from("nimbus-data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_aws_shape() {
        let id = new_id("vol");
        assert_eq!(id.len(), 4 + 17);
        assert!(is_valid_id(&id, "vol"));
        assert!(!is_valid_id(&id, "snap"));
        assert!(!is_valid_id("vol-XYZ", "vol"));
        assert!(is_valid_id("vol-0123abcd", "vol"));
    }

    #[test]
    fn timestamps_have_millis() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn config_parses_partial_file() {
        let config: Config = toml::from_str("region = \"eu-west-1\"\n").expect("parse");
        assert_eq!(config.region, "eu-west-1");
        assert_eq!(config.credentials[0].access_key_id, "test");
    }

    #[test]
    fn a_limits_table_overrides_only_what_it_names() {
        let config: Config = toml::from_str("[limits]\nvpcs = 2\n").expect("parse");
        assert_eq!(config.limits.vpcs, 2);
        assert_eq!(config.limits.subnets_per_vpc, 200);
        assert!(toml::from_str::<Config>("[limits]\nvpc = 2\n").is_err());
    }

    #[test]
    fn guests_reach_only_the_networks_the_operator_names() {
        assert!(Config::default().network.reachable_from_guests.is_empty());
        let config: Config =
            toml::from_str("[network]\nreachable_from_guests = [\"192.168.1.10/32\"]\n")
                .expect("parse");
        assert_eq!(
            config.network.reachable_from_guests,
            vec!["192.168.1.10/32".parse::<ipnet::Ipv4Net>().expect("CIDR")]
        );
        for bad in ["[\"192.168.1.300/32\"]", "[\"fd00::/8\"]", "\"10.0.0.0/8\""] {
            let text = format!("[network]\nreachable_from_guests = {bad}\n");
            assert!(toml::from_str::<Config>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_credentials_stay_on_loopback_unless_allowed() {
        let mut config = Config::default();
        assert!(config.check_protected_mode().is_ok());
        config.listen = "[::1]:4566".parse().expect("address");
        assert!(config.check_protected_mode().is_ok());
        config.listen = "0.0.0.0:4566".parse().expect("address");
        assert!(matches!(
            config.check_protected_mode(),
            Err(ConfigError::DefaultCredentialsExposed { .. })
        ));
        config.allow_default_credentials = true;
        assert!(config.check_protected_mode().is_ok());
        let own: Config = toml::from_str(
            "listen = \"0.0.0.0:4566\"\n[[credentials]]\naccess_key_id = \"AKIDEXAMPLE\"\n\
             secret_access_key = \"s3cr3t\"\n",
        )
        .expect("parse");
        assert!(own.check_protected_mode().is_ok());
    }

    #[test]
    fn nbd_is_served_on_loopback_only() {
        let mut config = Config {
            nbd_listen: Some("127.0.0.1:10809".parse().expect("address")),
            ..Config::default()
        };
        assert!(config.check_protected_mode().is_ok());
        config.nbd_listen = Some("0.0.0.0:10809".parse().expect("address"));
        assert!(matches!(
            config.check_protected_mode(),
            Err(ConfigError::UnauthenticatedNbd { .. })
        ));
    }
}
