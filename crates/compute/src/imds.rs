//! The instance metadata service, one per VPC on a TCP listener at 169.254.169.254:80 inside
//! the VPC's network namespace (made by the network driver). A connection is answered for the
//! instance whose interface holds its source address: the network drops spoofed sources, so
//! no guest reads another's metadata, and tokens are bound to the instance they were issued
//! to. `HttpPutResponseHopLimit` is the IP TTL of the connection's responses, so a token
//! asked for from one hop too far (a container behind the guest) never arrives.
//! IMDSv1 and IMDSv2 as EC2 serves them: session tokens from
//! `PUT /latest/api/token` (TTL 1–21600 s), 401 for a bad token or, when tokens are required,
//! for none; a PUT carrying `X-Forwarded-For` is refused.
//!
//! Invariants — what one guest can take of the service is bounded per instance ([`LIMITS`]),
//! so a guest that floods it slows only itself and its neighbours keep their answers:
//! - at most 64 open connections per instance; one more is closed as soon as it is accepted;
//! - at most 100 requests a second per instance, in bursts of up to 200; beyond, 429 Too Many
//!   Requests, as EC2 answers when it throttles, before any metadata is read;
//! - a request head must be complete within 10 s of the connection's start, and within 16 KiB
//!   (hyper's header timeout and read buffer); a connection carries one request (no
//!   keep-alive), so none stays open idle after its answer;
//! - at most 1,000 live session tokens per instance; a new one beyond displaces that
//!   instance's token nearest its expiry, so a guest can only ever displace its own.
//!
//! Addresses no instance holds share one such budget. The state of an instance with neither
//! a connection nor a live token is forgotten within a minute.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the metadata service says about one instance, read fresh for every request.
#[derive(Clone, Debug, Default)]
pub struct InstanceMetadata {
    pub instance_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub launch_index: u32,
    pub reservation_id: String,
    pub account_id: String,
    pub region: String,
    pub availability_zone: String,
    pub local_hostname: String,
    pub local_ipv4: String,
    pub mac: String,
    pub launch_time: String,
    /// (key name, OpenSSH public key)
    pub public_key: Option<(String, String)>,
    /// (name such as `ami`, `root`, `ebs1`; guest-visible device)
    pub block_devices: Vec<(String, String)>,
    pub user_data: Option<Vec<u8>>,
    pub tokens_required: bool,
    pub endpoint_enabled: bool,
    /// Present when the instance exposes its tags to the metadata service.
    pub tags: Option<BTreeMap<String, String>>,
    /// Present when the instance was launched with an instance profile.
    pub iam: Option<IamMetadata>,
    /// The primary interface's public or elastic IP, and its public DNS name.
    pub public_ipv4: Option<String>,
    pub public_hostname: Option<String>,
    /// The names of the primary interface's security groups.
    pub security_groups: Vec<String>,
    /// `network/interfaces/macs/<mac>/…`, one per interface.
    pub interfaces: Vec<InterfaceMetadata>,
}

/// One network interface under `meta-data/network/interfaces/macs/<mac>/`.
#[derive(Clone, Debug, Default)]
pub struct InterfaceMetadata {
    pub device_number: u32,
    pub interface_id: String,
    pub mac: String,
    pub owner_id: String,
    pub local_hostname: String,
    /// The primary private IP first.
    pub local_ipv4s: Vec<String>,
    pub public_hostname: Option<String>,
    pub public_ipv4s: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub security_groups: Vec<String>,
    pub subnet_id: String,
    pub subnet_ipv4_cidr_block: String,
    pub vpc_id: String,
    /// The VPC's primary block first.
    pub vpc_ipv4_cidr_blocks: Vec<String>,
}

/// The `iam/` tree: the instance profile and, when it holds a role, that role's credentials.
#[derive(Clone, Debug, Default)]
pub struct IamMetadata {
    pub instance_profile_arn: String,
    pub instance_profile_id: String,
    /// When the credentials were last issued (ISO 8601 UTC).
    pub last_updated: String,
    pub role: Option<RoleCredentials>,
}

/// Temporary credentials of the instance profile's role; timestamps ISO 8601 UTC.
#[derive(Clone, Debug, Default)]
pub struct RoleCredentials {
    pub role_name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub expiration: String,
}

/// Where the metadata of a VPC's instances comes from (the control plane).
pub trait MetadataSource: Send + Sync + 'static {
    /// The ID of the instance whose interface holds `address`; the service's bounds are
    /// counted per instance.
    fn instance_id(&self, address: Ipv4Addr) -> Option<String>;
    /// The metadata of the instance whose interface holds `address`; `None` if none does.
    fn metadata(&self, address: Ipv4Addr) -> Option<InstanceMetadata>;
    /// The `HttpPutResponseHopLimit` of the instance holding `address` (1 if none does).
    fn hop_limit(&self, address: Ipv4Addr) -> u8;
}

const MAX_TOKEN_TTL: u64 = 21600;
/// Dated API versions EC2 serves besides `latest` (cloud-init asks for some of them).
const API_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "2011-01-01",
    "2011-05-01",
    "2012-01-12",
    "2014-02-25",
    "2014-11-05",
    "2015-10-20",
    "2016-04-19",
    "2016-06-30",
    "2016-09-02",
    "2018-03-28",
    "2018-08-17",
    "2018-09-24",
    "2019-10-01",
    "2020-10-27",
    "2021-01-03",
    "2021-03-23",
    "2021-07-15",
    "2022-09-24",
];

/// What one instance may take of the service (the module's invariants).
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Connections open at once.
    connections: usize,
    /// Requests answered in one burst, and the rate the burst refills at (per second).
    burst: f64,
    per_second: f64,
    /// Live session tokens.
    tokens: usize,
    /// Time to send a complete request head, from the connection's start.
    header_timeout: Duration,
}

/// Far above what a real client needs: cloud-init and the AWS SDKs open a handful of
/// connections, make tens of requests a second at boot, and hold one token per process
/// (the SDKs ask for 6 hours); the SDKs give up on IMDS after 1 s.
const LIMITS: Limits = Limits {
    connections: 64,
    burst: 200.0,
    per_second: 100.0,
    tokens: 1000,
    header_timeout: Duration::from_secs(10),
};
/// hyper's read buffer, and so the largest request head (hyper's minimum is 8 KiB).
const MAX_BUFFER: usize = 16 * 1024;
/// How often the state of instances without connections or live tokens is forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What the service holds for one instance.
struct Guest {
    connections: usize,
    /// Requests it may make now (a token bucket), as of `refilled`.
    allowance: f64,
    refilled: Instant,
    /// Its session tokens and when each expires.
    tokens: HashMap<String, Instant>,
}

impl Guest {
    fn new(limits: &Limits, now: Instant) -> Guest {
        Guest {
            connections: 0,
            allowance: limits.burst,
            refilled: now,
            tokens: HashMap::new(),
        }
    }

    /// Takes one request from the bucket; false when it is empty.
    fn take_request(&mut self, limits: &Limits, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.refilled).as_secs_f64() * limits.per_second;
        self.allowance = (self.allowance + earned).min(limits.burst);
        self.refilled = now;
        if self.allowance < 1.0 {
            return false;
        }
        self.allowance -= 1.0;
        true
    }

    /// Keeps a new token; at the cap, the expired ones go, then the one nearest its expiry.
    fn keep_token(&mut self, token: String, expiry: Instant, limits: &Limits, now: Instant) {
        if self.tokens.len() >= limits.tokens {
            self.tokens.retain(|_, expiry| *expiry > now);
        }
        if self.tokens.len() >= limits.tokens {
            let nearest = self
                .tokens
                .iter()
                .min_by_key(|(_, expiry)| **expiry)
                .map(|(token, _)| token.clone());
            if let Some(nearest) = nearest {
                self.tokens.remove(&nearest);
            }
        }
        self.tokens.insert(token, expiry);
    }
}

struct Service {
    source: Arc<dyn MetadataSource>,
    limits: Limits,
    /// By instance ID; "" for addresses no instance holds.
    guests: Mutex<HashMap<String, Guest>>,
}

/// A connection counted against its instance until it is dropped.
struct Admitted {
    service: Arc<Service>,
    key: String,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(guest) = self.service.guests().get_mut(&self.key) {
            guest.connections = guest.connections.saturating_sub(1);
        }
    }
}

/// Serves the metadata of a VPC's instances on `listener` until the task is dropped.
/// Requests may be half-closed (busybox `nc` and `wget` shut their write side after the
/// request), so HTTP/1 is served with half-close support. Each connection carries one
/// request: hyper does not notice a client closing a kept-alive connection until its header
/// timer fires, so one-shot HTTP/1.1 clients (curl in a loop) would each hold a slot for
/// 10 s; without keep-alive a slot is free as soon as its answer is sent.
pub async fn serve_imds(
    listener: std::net::TcpListener,
    source: Arc<dyn MetadataSource>,
) -> std::io::Result<()> {
    serve_limited(listener, source, LIMITS).await
}

async fn serve_limited(
    listener: std::net::TcpListener,
    source: Arc<dyn MetadataSource>,
    limits: Limits,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let service = Arc::new(Service {
        source,
        limits,
        guests: Mutex::new(HashMap::new()),
    });
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = sweep.tick() => {
                service.sweep();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, or a connection reset before it was accepted.
                tracing::warn!(%error, "metadata service cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let SocketAddr::V4(peer) = peer else {
            continue;
        };
        let key = service.source.instance_id(*peer.ip()).unwrap_or_default();
        // Over its instance's limit, the connection is closed here (dropped).
        let Some(admitted) = service.admit(key) else {
            continue;
        };
        let _ = stream.set_ttl(u32::from(service.source.hop_limit(*peer.ip())));
        let service = service.clone();
        tokio::spawn(async move {
            let key = admitted.key.clone();
            let handler =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = service.handle(&key, peer, request.map(Body::new));
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(admitted.service.limits.header_timeout)
                .keep_alive(false)
                .max_buf_size(MAX_BUFFER)
                .half_close(true)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), handler)
                .await;
            drop(admitted);
        });
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [("content-type", "text/plain")], body.into()).into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Service {
    fn guests(&self) -> std::sync::MutexGuard<'_, HashMap<String, Guest>> {
        self.guests.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on what the service holds for `key`'s instance, made if it holds nothing.
    fn with_guest<R>(&self, key: &str, f: impl FnOnce(&mut Guest, &Limits, Instant) -> R) -> R {
        let now = Instant::now();
        let mut guests = self.guests();
        let guest = guests
            .entry(key.to_owned())
            .or_insert_with(|| Guest::new(&self.limits, now));
        f(guest, &self.limits, now)
    }

    /// Counts a new connection against `key`'s instance, unless it holds its limit already.
    fn admit(self: &Arc<Self>, key: String) -> Option<Admitted> {
        let admitted = self.with_guest(&key, |guest, limits, _| {
            let room = guest.connections < limits.connections;
            guest.connections += usize::from(room);
            room
        });
        if !admitted {
            tracing::debug!(instance = key, "metadata connection over the limit closed");
            return None;
        }
        Some(Admitted {
            service: self.clone(),
            key,
        })
    }

    /// Forgets the instances that hold neither a connection nor a live token.
    fn sweep(&self) {
        let now = Instant::now();
        self.guests().retain(|_, guest| {
            guest.tokens.retain(|_, expiry| *expiry > now);
            guest.connections > 0 || !guest.tokens.is_empty()
        });
    }

    fn handle(&self, key: &str, peer: SocketAddrV4, request: Request<Body>) -> Response {
        if !self.with_guest(key, Guest::take_request) {
            return text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        }
        let Some(metadata) = self.source.metadata(*peer.ip()) else {
            return text(StatusCode::NOT_FOUND, "Not Found");
        };
        if !metadata.endpoint_enabled {
            return text(StatusCode::FORBIDDEN, "Forbidden");
        }
        let path = request.uri().path().to_owned();
        let headers = request.headers();
        if path == "/latest/api/token" {
            return match *request.method() {
                Method::PUT => self.issue_token(&metadata.instance_id, headers),
                _ => text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
            };
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        }
        match header(headers, "x-aws-ec2-metadata-token") {
            Some(token) if !self.token_valid(&metadata.instance_id, token) => {
                return text(StatusCode::UNAUTHORIZED, "Unauthorized")
            }
            None if metadata.tokens_required => {
                return text(StatusCode::UNAUTHORIZED, "Unauthorized")
            }
            _ => {}
        }
        match lookup(&metadata, &path) {
            Some(Entry::Value(body)) => {
                (StatusCode::OK, [("content-type", "text/plain")], body).into_response()
            }
            Some(Entry::Listing(names)) => text(StatusCode::OK, names.join("\n")),
            None => text(StatusCode::NOT_FOUND, "Not Found"),
        }
    }

    fn issue_token(&self, instance_id: &str, headers: &HeaderMap) -> Response {
        if headers.contains_key("x-forwarded-for") {
            return text(StatusCode::FORBIDDEN, "Forbidden");
        }
        let ttl = header(headers, "x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
            return text(StatusCode::BAD_REQUEST, "Bad Request");
        };
        let token: String = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        };
        self.with_guest(instance_id, |guest, limits, now| {
            guest.keep_token(token.clone(), now + Duration::from_secs(ttl), limits, now);
        });
        (
            StatusCode::OK,
            [
                ("content-type", "text/plain"),
                ("x-aws-ec2-metadata-token-ttl-seconds", &ttl.to_string()),
            ],
            token,
        )
            .into_response()
    }

    /// A token is good only for the instance it was issued to.
    fn token_valid(&self, instance_id: &str, token: &str) -> bool {
        self.guests()
            .get(instance_id)
            .and_then(|guest| guest.tokens.get(token))
            .is_some_and(|expiry| *expiry > Instant::now())
    }
}

enum Entry {
    Value(Vec<u8>),
    Listing(Vec<String>),
}

/// Every leaf of the metadata tree, by path below `/latest/`.
fn leaves(m: &InstanceMetadata) -> BTreeMap<String, Vec<u8>> {
    let mut leaves: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |path: &str, value: &str| {
        leaves.insert(path.to_owned(), value.as_bytes().to_vec());
    };
    put("meta-data/ami-id", &m.image_id);
    put("meta-data/ami-launch-index", &m.launch_index.to_string());
    put("meta-data/hostname", &m.local_hostname);
    put("meta-data/instance-id", &m.instance_id);
    put("meta-data/instance-type", &m.instance_type);
    put("meta-data/local-hostname", &m.local_hostname);
    put("meta-data/local-ipv4", &m.local_ipv4);
    put("meta-data/mac", &m.mac);
    put(
        "meta-data/placement/availability-zone",
        &m.availability_zone,
    );
    put("meta-data/placement/region", &m.region);
    put("meta-data/reservation-id", &m.reservation_id);
    put("meta-data/security-groups", &m.security_groups.join("\n"));
    if let Some(ip) = &m.public_ipv4 {
        put("meta-data/public-ipv4", ip);
    }
    if let Some(name) = &m.public_hostname {
        put("meta-data/public-hostname", name);
    }
    for interface in &m.interfaces {
        let base = format!("meta-data/network/interfaces/macs/{}", interface.mac);
        let mut field = |name: &str, value: &str| put(&format!("{base}/{name}"), value);
        field("device-number", &interface.device_number.to_string());
        field("interface-id", &interface.interface_id);
        field("local-hostname", &interface.local_hostname);
        field("local-ipv4s", &interface.local_ipv4s.join("\n"));
        field("mac", &interface.mac);
        field("owner-id", &interface.owner_id);
        if let Some(name) = &interface.public_hostname {
            field("public-hostname", name);
        }
        if !interface.public_ipv4s.is_empty() {
            field("public-ipv4s", &interface.public_ipv4s.join("\n"));
        }
        field(
            "security-group-ids",
            &interface.security_group_ids.join("\n"),
        );
        field("security-groups", &interface.security_groups.join("\n"));
        field("subnet-id", &interface.subnet_id);
        field("subnet-ipv4-cidr-block", &interface.subnet_ipv4_cidr_block);
        field("vpc-id", &interface.vpc_id);
        let primary = interface
            .vpc_ipv4_cidr_blocks
            .first()
            .cloned()
            .unwrap_or_default();
        field("vpc-ipv4-cidr-block", &primary);
        field(
            "vpc-ipv4-cidr-blocks",
            &interface.vpc_ipv4_cidr_blocks.join("\n"),
        );
    }
    put("meta-data/services/domain", "amazonaws.com");
    for (name, device) in &m.block_devices {
        put(&format!("meta-data/block-device-mapping/{name}"), device);
    }
    if let Some((name, key)) = &m.public_key {
        put(&format!("meta-data/public-keys/0={name}"), "");
        put("meta-data/public-keys/0/openssh-key", key);
    }
    if let Some(tags) = &m.tags {
        for (key, value) in tags {
            put(&format!("meta-data/tags/instance/{key}"), value);
        }
    }
    let document = serde_json::json!({
        "accountId": m.account_id,
        "architecture": "x86_64",
        "availabilityZone": m.availability_zone,
        "imageId": m.image_id,
        "instanceId": m.instance_id,
        "instanceType": m.instance_type,
        "pendingTime": m.launch_time,
        "privateIp": m.local_ipv4,
        "region": m.region,
        "version": "2017-09-30",
    });
    put(
        "dynamic/instance-identity/document",
        &serde_json::to_string_pretty(&document).unwrap_or_default(),
    );
    if let Some(user_data) = &m.user_data {
        leaves.insert("user-data".into(), user_data.clone());
    }
    if let Some(iam) = &m.iam {
        insert_iam_leaves(&mut leaves, iam);
    }
    leaves
}

/// `meta-data/iam/info` and `meta-data/iam/security-credentials/ROLE`, as EC2 writes them.
fn insert_iam_leaves(leaves: &mut BTreeMap<String, Vec<u8>>, iam: &IamMetadata) {
    let pretty = |value: serde_json::Value| {
        serde_json::to_string_pretty(&value)
            .unwrap_or_default()
            .into_bytes()
    };
    leaves.insert(
        "meta-data/iam/info".into(),
        pretty(serde_json::json!({
            "Code": "Success",
            "LastUpdated": iam.last_updated,
            "InstanceProfileArn": iam.instance_profile_arn,
            "InstanceProfileId": iam.instance_profile_id,
        })),
    );
    if let Some(role) = &iam.role {
        leaves.insert(
            format!("meta-data/iam/security-credentials/{}", role.role_name),
            pretty(serde_json::json!({
                "Code": "Success",
                "LastUpdated": iam.last_updated,
                "Type": "AWS-HMAC",
                "AccessKeyId": role.access_key_id,
                "SecretAccessKey": role.secret_access_key,
                "Token": role.token,
                "Expiration": role.expiration,
            })),
        );
    }
}

fn lookup(metadata: &InstanceMetadata, path: &str) -> Option<Entry> {
    if path == "/" {
        let mut versions: Vec<String> = API_VERSIONS.iter().map(|v| v.to_string()).collect();
        versions.push("latest".into());
        return Some(Entry::Listing(versions));
    }
    // `/latest/…` and the dated API versions (`/2009-04-04/…`) serve the same tree.
    let (version, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path.trim_start_matches('/'), ""));
    if version != "latest" && !API_VERSIONS.contains(&version) {
        return None;
    }
    let relative = rest;
    let leaves = leaves(metadata);
    let wanted = relative.trim_end_matches('/');
    if let Some(value) = leaves.get(wanted) {
        if !relative.ends_with('/') {
            return Some(Entry::Value(value.clone()));
        }
    }
    // A directory: list the next path segment of everything below it.
    let prefix = if wanted.is_empty() {
        String::new()
    } else {
        format!("{wanted}/")
    };
    let mut names: Vec<String> = Vec::new();
    for key in leaves.keys().filter(|k| k.starts_with(&prefix)) {
        let name = match key[prefix.len()..].split_once('/') {
            Some((first, _)) => format!("{first}/"),
            None => key[prefix.len()..].to_owned(),
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    // EC2 lists a public key as `0=name` only; its `0/` directory is implied.
    let keyed: Vec<String> = names
        .iter()
        .filter_map(|n| n.split_once('=').map(|(i, _)| format!("{i}/")))
        .collect();
    names.retain(|n| !keyed.contains(n));
    (!names.is_empty()).then_some(Entry::Listing(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The n-th instance answers at 127.0.0.n+1; nothing answers for other addresses.
    struct Fixed(Vec<InstanceMetadata>);
    impl Fixed {
        fn at(&self, address: Ipv4Addr) -> Option<&InstanceMetadata> {
            let [127, 0, 0, n] = address.octets() else {
                return None;
            };
            self.0.get(usize::from(n).checked_sub(1)?)
        }
    }
    impl MetadataSource for Fixed {
        fn instance_id(&self, address: Ipv4Addr) -> Option<String> {
            self.at(address).map(|m| m.instance_id.clone())
        }
        fn metadata(&self, address: Ipv4Addr) -> Option<InstanceMetadata> {
            self.at(address).cloned()
        }
        fn hop_limit(&self, _address: Ipv4Addr) -> u8 {
            3
        }
    }

    const A: Ipv4Addr = Ipv4Addr::LOCALHOST;
    const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const INSTANCE_ID: &str = "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: imds\r\n\r\n";

    async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from((from, 0))).expect("bind");
        socket.connect(to).await.expect("connect")
    }

    /// The status code and body of an HTTP answer.
    fn parse(answer: &str) -> (u16, String) {
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    /// One raw HTTP/1.0 exchange from `from`; returns the status code and body.
    async fn exchange_from(from: Ipv4Addr, to: SocketAddr, request: &str) -> (u16, String) {
        let mut stream = connect_from(from, to).await;
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        parse(&answer)
    }

    async fn exchange(to: &SocketAddr, request: &str) -> (u16, String) {
        exchange_from(A, *to, request).await
    }

    /// One request on a kept-alive connection; the answer is read to its `content-length`.
    async fn ask(stream: &mut tokio::net::TcpStream, request: &str) -> (u16, String) {
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        loop {
            let text = String::from_utf8_lossy(&answer).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|l| l.trim().parse::<usize>().ok())
                    .expect("content-length");
                if body.len() >= length {
                    return parse(&text);
                }
            }
            let mut chunk = [0; 1024];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed before the answer: {text:?}");
            answer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Waits for the server to close the connection; what it said until then.
    async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> String {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut rest));
        match read.await {
            Ok(_) => String::from_utf8_lossy(&rest).into_owned(),
            Err(_) => panic!("the server kept the connection open"),
        }
    }

    async fn serve_all(limits: Limits, instances: Vec<InstanceMetadata>) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let address = listener.local_addr().expect("address");
        tokio::spawn(serve_limited(listener, Arc::new(Fixed(instances)), limits));
        address
    }

    async fn serve(metadata: InstanceMetadata) -> SocketAddr {
        serve_all(LIMITS, vec![metadata]).await
    }

    /// Two instances: A at 127.0.0.1 and its neighbour B at 127.0.0.2.
    async fn serve_pair(limits: Limits) -> SocketAddr {
        let neighbour = InstanceMetadata {
            instance_id: "i-0b0b0b0b0b0b0b0b0".into(),
            ..metadata()
        };
        serve_all(limits, vec![metadata(), neighbour]).await
    }

    #[test]
    fn the_request_bucket_and_the_tokens_are_bounded() {
        let limits = Limits {
            burst: 3.0,
            per_second: 2.0,
            tokens: 3,
            ..LIMITS
        };
        let start = Instant::now();
        let mut guest = Guest::new(&limits, start);
        let taken = (0..10)
            .filter(|_| guest.take_request(&limits, start))
            .count();
        assert_eq!(taken, 3, "a burst");
        let later = start + Duration::from_secs(1);
        let taken = (0..10)
            .filter(|_| guest.take_request(&limits, later))
            .count();
        assert_eq!(taken, 2, "a second's refill");
        let much_later = start + Duration::from_secs(3600);
        let taken = (0..10)
            .filter(|_| guest.take_request(&limits, much_later))
            .count();
        assert_eq!(taken, 3, "never more than a burst");

        for ttl in [5, 1, 4, 2, 3] {
            let expiry = start + Duration::from_secs(ttl);
            guest.keep_token(format!("t{ttl}"), expiry, &limits, start);
        }
        let mut kept: Vec<&String> = guest.tokens.keys().collect();
        kept.sort();
        assert_eq!(kept, ["t3", "t4", "t5"], "the nearest expiries go first");
        // Expired tokens make room before live ones are displaced.
        let at_four = start + Duration::from_secs(4);
        guest.keep_token(
            "u".into(),
            at_four + Duration::from_secs(9),
            &limits,
            at_four,
        );
        let mut kept: Vec<&String> = guest.tokens.keys().collect();
        kept.sort();
        assert_eq!(kept, ["t5", "u"]);
    }

    #[tokio::test]
    async fn connections_are_limited_per_instance() {
        let server = serve_pair(Limits {
            connections: 4,
            ..LIMITS
        })
        .await;
        // Held without a request; admitted in the order they are accepted.
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(connect_from(A, server).await);
        }
        // A fifth connection from A is closed unanswered.
        let mut fifth = connect_from(A, server).await;
        let _ = fifth.write_all(INSTANCE_ID.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = fifth.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{answer:?}");
        // The neighbour is served meanwhile.
        assert_eq!(
            exchange_from(B, server, INSTANCE_ID).await,
            (200, "i-0b0b0b0b0b0b0b0b0".into())
        );
        // A connection closed makes room again (once the server has seen it close).
        held.pop();
        loop {
            let mut again = connect_from(A, server).await;
            let _ = again.write_all(INSTANCE_ID.as_bytes()).await;
            let mut answer = Vec::new();
            let _ = again.read_to_end(&mut answer).await;
            if !answer.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn requests_beyond_the_rate_answer_429_and_the_neighbour_is_served() {
        let server = serve_pair(Limits {
            burst: 5.0,
            per_second: 1.0,
            ..LIMITS
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..50 {
            statuses.push(exchange_from(A, server, INSTANCE_ID).await.0);
        }
        assert_eq!(statuses[..5], [200; 5], "a full burst first");
        assert!(statuses.contains(&429), "{statuses:?}");
        assert_eq!(exchange_from(B, server, INSTANCE_ID).await.0, 200);
    }

    #[tokio::test]
    async fn tokens_are_capped_per_instance() {
        let server = serve_pair(Limits {
            tokens: 3,
            ..LIMITS
        })
        .await;
        let put = |ttl: u32| {
            format!(
                "PUT /latest/api/token HTTP/1.1\r\nHost: imds\r\nX-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n\r\n"
            )
        };
        let get = |token: &str| {
            format!("GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: imds\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n")
        };
        let (status, neighbours) = exchange_from(B, server, &put(100)).await;
        assert_eq!(status, 200);
        let mut tokens = Vec::new();
        for ttl in 100..106 {
            let (status, token) = exchange_from(A, server, &put(ttl)).await;
            assert_eq!(status, 200);
            tokens.push(token);
        }
        let mut statuses = Vec::new();
        for token in &tokens {
            statuses.push(exchange_from(A, server, &get(token)).await.0);
        }
        assert_eq!(statuses, [401, 401, 401, 200, 200, 200]);
        assert_eq!(exchange_from(B, server, &get(&neighbours)).await.0, 200);
    }

    #[tokio::test]
    async fn slow_request_heads_and_answered_connections_are_closed() {
        // A short header timeout (the default is 10 s), for the test's sake.
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            ..LIMITS
        };
        let server = serve_all(limits, vec![metadata()]).await;
        let mut slow = connect_from(A, server).await;
        slow.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost:")
            .await
            .expect("write");
        let rest = closed_by_server(&mut slow).await;
        assert!(!rest.contains("200 OK"), "{rest}");
        let mut silent = connect_from(A, server).await;
        assert_eq!(closed_by_server(&mut silent).await, "");
        // An HTTP/1.1 request (keep-alive by default) is answered, then its connection ends.
        let mut answered = connect_from(A, server).await;
        assert_eq!(ask(&mut answered, INSTANCE_ID).await.0, 200);
        closed_by_server(&mut answered).await;
    }

    #[tokio::test]
    async fn answers_only_for_the_instance_holding_the_source_address() {
        let server = serve(metadata()).await;
        let get = "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n";
        assert_eq!(
            exchange(&server, get).await,
            (200, "i-0123456789abcdef0".into())
        );
        // 127.0.0.2 is another address of this host: no instance holds it.
        let other = exchange_from(Ipv4Addr::new(127, 0, 0, 2), server, get).await;
        assert_eq!(other.0, 404);
    }

    #[tokio::test]
    async fn imdsv2_rules_over_a_real_socket() {
        let socket = serve(InstanceMetadata {
            tokens_required: true,
            ..metadata()
        })
        .await;
        let put = |extra: &str| format!("PUT /latest/api/token HTTP/1.0\r\n{extra}\r\n");
        let (status, token) = exchange(
            &socket,
            &put("X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"),
        )
        .await;
        assert_eq!(status, 200);
        let forwarded =
            put("X-aws-ec2-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 10.0.0.1\r\n");
        assert_eq!(exchange(&socket, &forwarded).await.0, 403);
        assert_eq!(
            exchange(&socket, &put("X-aws-ec2-metadata-token-ttl-seconds: 0\r\n"))
                .await
                .0,
            400
        );
        assert_eq!(exchange(&socket, &put("")).await.0, 400);
        let get = |token: &str| {
            format!("GET /latest/meta-data/instance-id HTTP/1.0\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n")
        };
        assert_eq!(
            exchange(&socket, &get(&token)).await,
            (200, "i-0123456789abcdef0".to_owned())
        );
        assert_eq!(exchange(&socket, &get("forged")).await.0, 401);
        let without_token = "GET /latest/meta-data/instance-id HTTP/1.0\r\n\r\n";
        assert_eq!(exchange(&socket, without_token).await.0, 401);

        let optional = serve(metadata()).await;
        assert_eq!(exchange(&optional, without_token).await.0, 200);
        let disabled = serve(InstanceMetadata {
            endpoint_enabled: false,
            ..metadata()
        })
        .await;
        assert_eq!(exchange(&disabled, without_token).await.0, 403);
    }

    fn metadata() -> InstanceMetadata {
        InstanceMetadata {
            instance_id: "i-0123456789abcdef0".into(),
            public_key: Some(("demo".into(), "ssh-ed25519 AAAA demo".into())),
            block_devices: vec![
                ("ami".into(), "/dev/xvda".into()),
                ("root".into(), "/dev/xvda".into()),
            ],
            user_data: Some(b"#!/bin/sh\necho hi\n".to_vec()),
            endpoint_enabled: true,
            ..InstanceMetadata::default()
        }
    }

    fn get(path: &str) -> Option<String> {
        match lookup(&metadata(), path)? {
            Entry::Value(v) => Some(String::from_utf8_lossy(&v).into_owned()),
            Entry::Listing(names) => Some(names.join("\n")),
        }
    }

    #[test]
    fn tree_lookups() {
        assert_eq!(
            get("/latest/meta-data/instance-id").as_deref(),
            Some("i-0123456789abcdef0")
        );
        assert_eq!(
            get("/latest/meta-data/public-keys/").as_deref(),
            Some("0=demo")
        );
        assert_eq!(
            get("/latest/meta-data/public-keys/0/openssh-key").as_deref(),
            Some("ssh-ed25519 AAAA demo")
        );
        assert_eq!(
            get("/latest/meta-data/block-device-mapping/").as_deref(),
            Some("ami\nroot")
        );
        assert_eq!(
            get("/latest/user-data").as_deref(),
            Some("#!/bin/sh\necho hi\n")
        );
        assert!(get("/latest/meta-data/")
            .is_some_and(|l| l.contains("instance-id") && l.contains("placement/")));
        assert!(
            get("/latest/").is_some_and(|l| l.contains("meta-data/") && l.contains("user-data"))
        );
        assert!(get("/latest/dynamic/instance-identity/document")
            .is_some_and(|d| d.contains("\"instanceId\"")));
        assert_eq!(get("/latest/meta-data/nothing"), None);
        assert_eq!(get("/elsewhere"), None);
        assert_eq!(
            get("/2009-04-04/meta-data/instance-id").as_deref(),
            Some("i-0123456789abcdef0")
        );
        assert!(get("/").is_some_and(|l| l.ends_with("latest")));
        assert_eq!(get("/latest/meta-data/iam/info"), None);
    }

    #[test]
    fn network_tree_serves_each_interface_by_mac() {
        let m = InstanceMetadata {
            mac: "02:00:00:00:00:01".into(),
            public_ipv4: Some("198.19.0.1".into()),
            security_groups: vec!["default".into(), "web".into()],
            interfaces: vec![InterfaceMetadata {
                mac: "02:00:00:00:00:01".into(),
                interface_id: "eni-0123456789abcdef0".into(),
                local_ipv4s: vec!["10.0.1.4".into()],
                public_ipv4s: vec!["198.19.0.1".into()],
                security_group_ids: vec!["sg-1".into(), "sg-2".into()],
                subnet_ipv4_cidr_block: "10.0.1.0/24".into(),
                vpc_ipv4_cidr_blocks: vec!["10.0.0.0/16".into(), "10.1.0.0/16".into()],
                ..InterfaceMetadata::default()
            }],
            ..metadata()
        };
        let get = |path: &str| match lookup(&m, path) {
            Some(Entry::Value(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            Some(Entry::Listing(names)) => Some(names.join("\n")),
            None => None,
        };
        let base = "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01";
        assert_eq!(
            get(&format!("{base}/local-ipv4s")).as_deref(),
            Some("10.0.1.4")
        );
        assert_eq!(
            get(&format!("{base}/security-group-ids")).as_deref(),
            Some("sg-1\nsg-2")
        );
        assert_eq!(
            get(&format!("{base}/vpc-ipv4-cidr-block")).as_deref(),
            Some("10.0.0.0/16")
        );
        assert_eq!(
            get(&format!("{base}/vpc-ipv4-cidr-blocks")).as_deref(),
            Some("10.0.0.0/16\n10.1.0.0/16")
        );
        assert_eq!(
            get("/latest/meta-data/public-ipv4").as_deref(),
            Some("198.19.0.1")
        );
        assert_eq!(
            get("/latest/meta-data/security-groups").as_deref(),
            Some("default\nweb")
        );
        assert_eq!(
            get("/latest/meta-data/network/interfaces/macs/").as_deref(),
            Some("02:00:00:00:00:01/")
        );
    }

    #[test]
    fn iam_tree_serves_the_profile_and_its_role_credentials() {
        let with_role = InstanceMetadata {
            iam: Some(IamMetadata {
                instance_profile_arn: "arn:aws:iam::000000000000:instance-profile/web".into(),
                instance_profile_id: "AIPAEXAMPLE".into(),
                last_updated: "2026-11-29T20:00:00.000Z".into(),
                role: Some(RoleCredentials {
                    role_name: "web-role".into(),
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: "secret".into(),
                    token: "token".into(),
                    expiration: "2026-11-29T21:00:00.000Z".into(),
                }),
            }),
            ..metadata()
        };
        let read = |m: &InstanceMetadata, path: &str| match lookup(m, path) {
            Some(Entry::Value(v)) => {
                serde_json::from_slice::<serde_json::Value>(&v).expect("json document")
            }
            Some(Entry::Listing(names)) => serde_json::json!(names),
            None => serde_json::Value::Null,
        };
        assert_eq!(
            read(&with_role, "/latest/meta-data/iam/"),
            serde_json::json!(["info", "security-credentials/"])
        );
        assert_eq!(
            read(&with_role, "/latest/meta-data/iam/security-credentials/"),
            serde_json::json!(["web-role"])
        );
        let info = read(&with_role, "/latest/meta-data/iam/info");
        assert_eq!(info["Code"], "Success");
        assert_eq!(info["InstanceProfileId"], "AIPAEXAMPLE");
        let credentials = read(
            &with_role,
            "/latest/meta-data/iam/security-credentials/web-role",
        );
        assert_eq!(credentials["Type"], "AWS-HMAC");
        assert_eq!(credentials["AccessKeyId"], "ASIAEXAMPLE");
        assert_eq!(credentials["Token"], "token");
        assert_eq!(credentials["Expiration"], "2026-11-29T21:00:00.000Z");

        let without_role = InstanceMetadata {
            iam: with_role
                .iam
                .clone()
                .map(|iam| IamMetadata { role: None, ..iam }),
            ..metadata()
        };
        assert_eq!(
            read(&without_role, "/latest/meta-data/iam/"),
            serde_json::json!(["info"])
        );
        assert_eq!(
            read(&without_role, "/latest/meta-data/iam/security-credentials/"),
            serde_json::Value::Null
        );
    }
}
