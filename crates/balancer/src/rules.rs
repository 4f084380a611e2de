//! What an HTTP listener does with a request: its rules (conditions and an action, by
//! priority) and its default action, as AWS's listener rules say them.
//!
//! Every string a user typed is held by a type whose constructor checks it against AWS's
//! limits ([`Pattern`], [`HeaderName`], [`Method`], [`Redirect`], [`ContentType`]); the
//! renderer quotes them for HAProxy's config (`render/quote.rs`), so no check here is what
//! keeps the config safe, only what keeps it AWS's.

use std::collections::BTreeSet;

use crate::spec::{within, Listener, Protocol, TargetGroup};
use crate::{Error, Result};

/// A listener rule: the first rule, in ascending priority, whose conditions all match acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// 1–50000, unique per listener.
    pub priority: u32,
    /// At least one; all must match.
    pub conditions: Vec<Condition>,
    pub action: Action,
}

/// One condition of a rule; each matches when any of its values does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Any of the patterns ([`Pattern::path`]), case-sensitive, on the path (not the query).
    PathPattern(Vec<Pattern>),
    /// Any of the patterns ([`Pattern::host`]), case-insensitive, on the Host header
    /// (port stripped).
    HostHeader(Vec<Pattern>),
    /// Header `name` has a value matching any of the patterns (case-insensitive).
    HttpHeader {
        name: HeaderName,
        values: Vec<Pattern>,
    },
    HttpRequestMethod(Vec<Method>),
    /// Any of the (key, value) pairs matches a query parameter, case-insensitive; key `None`
    /// matches any key. `\*`, `\?` and `\\` are a literal `*`, `?` and `\`, as on AWS.
    QueryString(Vec<(Option<Pattern>, Pattern)>),
    /// The client's address is in any of the CIDRs.
    SourceIp(Vec<ipnet::Ipv4Net>),
}

/// What a rule, or a listener by default, does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Weighted across groups (weights 0–999, not all 0): each request draws one. With
    /// `stickiness_secs` (AWS's target group stickiness, 1 s – 7 days) a client keeps the
    /// group it drew for that long, by the `AWSALBTG` cookie. TCP listeners: only this,
    /// without stickiness.
    Forward {
        groups: Vec<WeightedGroup>,
        stickiness_secs: Option<u32>,
    },
    /// Answers with a redirect.
    Redirect(Redirect),
    /// Answers itself: status 2XX, 4XX or 5XX, a body of at most 1,024 bytes (no NUL), with
    /// its content type (`text/plain` when a body has none).
    FixedResponse {
        status_code: u16,
        content_type: Option<ContentType>,
        body: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedGroup {
    pub target_group_id: String,
    pub weight: u16,
}

/// The longest pattern AWS takes.
const PATTERN_MAX: usize = 128;

/// A condition's value with AWS's wildcards: `*` is any run of characters, `?` one.
/// 1–128 printable ASCII characters (a space included); the constructors add what each
/// condition allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    /// A header value or query string pattern.
    pub fn new(text: &str) -> Result<Pattern> {
        Pattern::with_chars(text, "a pattern", |c| (' '..='~').contains(&c))
    }

    /// A path pattern: AWS's characters (letters, digits, `_-.$/~"'@:+&*?`).
    pub fn path(text: &str) -> Result<Pattern> {
        Pattern::with_chars(text, "a path pattern", is_path_char)
    }

    /// A host header pattern: letters, digits, `-`, `.` and the wildcards.
    pub fn host(text: &str) -> Result<Pattern> {
        Pattern::with_chars(text, "a host pattern", is_host_char)
    }

    fn with_chars(text: &str, what: &str, allowed: impl Fn(char) -> bool) -> Result<Pattern> {
        if (1..=PATTERN_MAX).contains(&text.len()) && text.chars().all(allowed) {
            Ok(Pattern(text.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "{text:?} is not {what}: 1–{PATTERN_MAX} characters AWS allows in it"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(c)
}

fn is_host_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.*?".contains(c)
}

/// An HTTP header's name: 1–40 token characters (RFC 7230), compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderName(String);

impl HeaderName {
    pub fn new(name: &str) -> Result<HeaderName> {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if (1..=40).contains(&name.len()) && name.chars().all(token) {
            Ok(HeaderName(name.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "{name:?} is not an HTTP header name (1–40 token characters)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An HTTP request method: 1–40 of `A-Z`, `_` and `-`, compared case-sensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method(String);

impl Method {
    pub fn new(method: &str) -> Result<Method> {
        let allowed = |c: char| c.is_ascii_uppercase() || c == '_' || c == '-';
        if (1..=40).contains(&method.len()) && method.chars().all(allowed) {
            Ok(Method(method.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "{method:?} is not an HTTP method (1–40 of A-Z, _ and -)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The content types a fixed response may declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    TextPlain,
    TextCss,
    TextHtml,
    ApplicationJavascript,
    ApplicationJson,
}

impl ContentType {
    const ALL: [ContentType; 5] = [
        ContentType::TextPlain,
        ContentType::TextCss,
        ContentType::TextHtml,
        ContentType::ApplicationJavascript,
        ContentType::ApplicationJson,
    ];

    /// AWS's `ContentType` value (`text/plain`, …).
    pub fn parse(text: &str) -> Result<ContentType> {
        ContentType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| Error::Invalid(format!("{text:?} is not a fixed response content type")))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::TextPlain => "text/plain",
            ContentType::TextCss => "text/css",
            ContentType::TextHtml => "text/html",
            ContentType::ApplicationJavascript => "application/javascript",
            ContentType::ApplicationJson => "application/json",
        }
    }
}

/// AWS's `RedirectConfig` as given: each part `None` keeps the request's, and the given
/// ones may reuse the request's with AWS's placeholders (`#{protocol}` in the protocol,
/// `#{port}` in the port, `#{host}` in the host, `#{host}`, `#{path}` and `#{port}` in the
/// path, any of them and `#{query}` in the query). `#{path}` is the path without its
/// leading `/`, so the default path is `/#{path}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedirectParts {
    /// `HTTP`, `HTTPS` or `#{protocol}`.
    pub protocol: Option<String>,
    /// 1–128 characters.
    pub host: Option<String>,
    /// A port number or `#{port}`.
    pub port: Option<String>,
    /// Starts with `/`, at most 128 characters.
    pub path: Option<String>,
    /// Without the leading `?`, at most 128 characters; empty drops the query.
    pub query: Option<String>,
}

/// A checked redirect: see [`Redirect::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    parts: RedirectParts,
    status_code: u16,
}

/// The placeholders each part of a redirect may hold.
const PROTOCOL: &str = "#{protocol}";
const HOST: &str = "#{host}";
const PORT: &str = "#{port}";
const PATH: &str = "#{path}";
const QUERY: &str = "#{query}";

impl Redirect {
    /// A redirect answered with `status_code` 301 or 302. Parts hold printable ASCII with no
    /// space, and only the placeholders their part allows; a redirect that keeps every
    /// part of the request would answer a request with itself, and is refused.
    pub fn new(parts: RedirectParts, status_code: u16) -> Result<Redirect> {
        let invalid = |why: String| Err(Error::Invalid(format!("a redirect {why}")));
        if status_code != 301 && status_code != 302 {
            return invalid(format!("answers 301 or 302, not {status_code}"));
        }
        if let Some(protocol) = &parts.protocol {
            if !["HTTP", "HTTPS", PROTOCOL].contains(&protocol.as_str()) {
                return invalid(format!(
                    "protocol is HTTP, HTTPS or {PROTOCOL}, not {protocol:?}"
                ));
            }
        }
        if let Some(port) = &parts.port {
            let number = port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with('0');
            if port != PORT && !number {
                return invalid(format!("port is a port number or {PORT}, not {port:?}"));
            }
        }
        let checks: [(&str, &Option<String>, &[&str], usize); 3] = [
            ("host", &parts.host, &[HOST], 1),
            ("path", &parts.path, &[HOST, PATH, PORT], 1),
            (
                "query",
                &parts.query,
                &[PROTOCOL, HOST, PORT, PATH, QUERY],
                0,
            ),
        ];
        for (what, value, placeholders, min) in checks {
            let Some(value) = value else { continue };
            let printable = value.chars().all(|c| c.is_ascii_graphic());
            if !printable || !(min..=PATTERN_MAX).contains(&value.len()) {
                return invalid(format!(
                    "{what} is {min}–{PATTERN_MAX} printable characters with no space, not {value:?}"
                ));
            }
            if let Some(unknown) = unknown_placeholder(value, placeholders) {
                return invalid(format!("{what} cannot hold {unknown:?}"));
            }
        }
        if parts.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
            return invalid("path starts with /".into());
        }
        if parts.query.as_ref().is_some_and(|q| q.starts_with('?')) {
            return invalid("query leaves out its leading ?".into());
        }
        let keeps = |part: &Option<String>, same: &str| part.as_deref().is_none_or(|p| p == same);
        if keeps(&parts.protocol, PROTOCOL)
            && keeps(&parts.host, HOST)
            && keeps(&parts.port, PORT)
            && keeps(&parts.path, "/#{path}")
            && keeps(&parts.query, QUERY)
        {
            return invalid("to the request's own URL would loop".into());
        }
        Ok(Redirect { parts, status_code })
    }

    pub fn parts(&self) -> &RedirectParts {
        &self.parts
    }

    pub fn status_code(&self) -> u16 {
        self.status_code
    }
}

/// The first `#{…}` in `value` that is not one of `allowed`.
fn unknown_placeholder<'a>(value: &'a str, allowed: &[&str]) -> Option<&'a str> {
    let mut rest = value;
    while let Some(start) = rest.find("#{") {
        let tail = &rest[start..];
        let end = tail.find('}').map_or(tail.len(), |i| i + 1);
        let placeholder = &tail[..end];
        if !allowed.contains(&placeholder) {
            return Some(placeholder);
        }
        rest = &tail[end..];
    }
    None
}

/// Checks a listener's rules and default action against the spec's groups.
pub(crate) fn check_listener(listener: &Listener, groups: &[TargetGroup]) -> Result<()> {
    let Listener {
        port,
        protocol,
        rules,
        default_action,
    } = listener;
    let protocol = *protocol;
    let invalid = |why: String| Err(Error::Invalid(format!("the listener on port {port} {why}")));
    if protocol == Protocol::Tcp {
        if !rules.is_empty() {
            return invalid("speaks TCP, which has no rules".into());
        }
        if !matches!(
            default_action,
            Action::Forward {
                stickiness_secs: None,
                ..
            }
        ) {
            return invalid("speaks TCP: it can only forward, without stickiness".into());
        }
    }
    let mut priorities = BTreeSet::new();
    for rule in rules {
        within("a rule priority", rule.priority, 1..=50_000)?;
        if !priorities.insert(rule.priority) {
            return invalid(format!("has two rules of priority {}", rule.priority));
        }
        if rule.conditions.is_empty() {
            return invalid(format!("has a rule ({}) with no condition", rule.priority));
        }
        for condition in &rule.conditions {
            check_condition(condition)
                .map_err(|why| Error::Invalid(format!("rule {}: {why}", rule.priority)))?;
        }
        check_action(&rule.action, protocol, groups)
            .map_err(|why| Error::Invalid(format!("rule {}: {why}", rule.priority)))?;
    }
    check_action(default_action, protocol, groups)
        .map_err(|why| Error::Invalid(format!("the listener on port {port}: {why}")))
}

/// Why a condition cannot be rendered, if it cannot.
fn check_condition(condition: &Condition) -> std::result::Result<(), String> {
    let values = match condition {
        Condition::PathPattern(patterns) => {
            if patterns
                .iter()
                .any(|p| !p.as_str().chars().all(is_path_char))
            {
                return Err("a path pattern has characters AWS does not allow in one".into());
            }
            patterns.len()
        }
        Condition::HostHeader(patterns) => {
            if patterns
                .iter()
                .any(|p| !p.as_str().chars().all(is_host_char))
            {
                return Err("a host pattern has characters AWS does not allow in one".into());
            }
            patterns.len()
        }
        Condition::HttpHeader { values, .. } => values.len(),
        Condition::HttpRequestMethod(methods) => methods.len(),
        Condition::QueryString(pairs) => pairs.len(),
        Condition::SourceIp(nets) => nets.len(),
    };
    if values == 0 {
        return Err("a condition has no value".into());
    }
    Ok(())
}

fn check_action(
    action: &Action,
    protocol: Protocol,
    groups: &[TargetGroup],
) -> std::result::Result<(), String> {
    match action {
        Action::Forward {
            groups: weighted,
            stickiness_secs,
        } => {
            if weighted.iter().all(|w| w.weight == 0) {
                return Err("it forwards nowhere (no group, or every weight 0)".into());
            }
            if let Some(secs) = stickiness_secs {
                within("a group stickiness duration", *secs, 1..=604_800)
                    .map_err(|e| e.to_string())?;
            }
            let mut seen = BTreeSet::new();
            for w in weighted {
                within("a weight", w.weight.into(), 0..=999).map_err(|e| e.to_string())?;
                if !seen.insert(&w.target_group_id) {
                    return Err(format!("it forwards to {} twice", w.target_group_id));
                }
                let group = groups
                    .iter()
                    .find(|g| g.id == w.target_group_id)
                    .ok_or_else(|| {
                        format!(
                            "it forwards to {:?}, which is not in the spec",
                            w.target_group_id
                        )
                    })?;
                if group.protocol != protocol {
                    return Err(format!(
                        "it forwards to {}, which speaks another protocol",
                        group.id
                    ));
                }
            }
            Ok(())
        }
        Action::Redirect(_) => Ok(()),
        Action::FixedResponse {
            status_code, body, ..
        } => {
            if !matches!(status_code / 100, 2 | 4 | 5) {
                return Err(format!(
                    "a fixed response's status is 2XX, 4XX or 5XX, not {status_code}"
                ));
            }
            if *status_code == 204 && !body.is_empty() {
                return Err("a 204 answer has no body".into());
            }
            if body.len() > 1024 || body.contains('\0') {
                return Err("a fixed response's body is at most 1,024 bytes, with no NUL".into());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::{forward, spec};
    use crate::spec::{check, BalancerSpec};

    #[test]
    fn constructors_hold_strings_to_aws_limits() {
        assert!(Pattern::new(&"a".repeat(128)).is_ok());
        for bad in ["", &"a".repeat(129), "a\nb", "tab\t", "é"] {
            assert!(Pattern::new(bad).is_err(), "{bad:?}");
        }
        assert!(
            Pattern::new("v\"#%[${* '\\").is_ok(),
            "printable ASCII is quoted, not refused"
        );
        assert!(Pattern::path("/api/*/$x~\"'@:+&?").is_ok());
        for bad in ["/a b", "/a#b", "/a%20", "/a\\b", "/a;b"] {
            assert!(Pattern::path(bad).is_err(), "{bad:?}");
        }
        assert!(Pattern::host("*.Example-1.com").is_ok());
        for bad in ["a_b.com", "a:80", "a b"] {
            assert!(Pattern::host(bad).is_err(), "{bad:?}");
        }
        assert!(HeaderName::new("X-Custom!#$%&'*+.^_`|~").is_ok());
        for bad in ["", "a b", "a:b", "a\"b", "a(b", &"h".repeat(41)] {
            assert!(HeaderName::new(bad).is_err(), "{bad:?}");
        }
        assert!(Method::new("CUSTOM_METHOD-1".trim_end_matches("-1")).is_ok());
        for bad in ["get", "GET ", "G1", ""] {
            assert!(Method::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ContentType::parse("application/json").expect("type"),
            ContentType::ApplicationJson
        );
        assert!(ContentType::parse("text/xml").is_err());
    }

    #[test]
    fn redirects_take_aws_placeholders_and_refuse_loops() {
        let parts = |f: fn(&mut RedirectParts)| {
            let mut parts = RedirectParts::default();
            f(&mut parts);
            parts
        };
        let https = parts(|p| p.protocol = Some("HTTPS".into()));
        assert_eq!(
            Redirect::new(https.clone(), 301).expect("ok").status_code(),
            301
        );
        assert!(Redirect::new(https, 303).is_err(), "301 or 302 only");
        let good = [
            parts(|p| p.path = Some("/new/#{path}".into())),
            parts(|p| p.host = Some("#{host}.example.org".into())),
            parts(|p| p.port = Some("8080".into())),
            parts(|p| p.query = Some(String::new())),
            parts(|p| p.query = Some("a=#{query}&h=#{host}".into())),
        ];
        for parts in good {
            assert!(Redirect::new(parts.clone(), 302).is_ok(), "{parts:?}");
        }
        let bad = [
            RedirectParts::default(),
            parts(|p| p.path = Some("/#{path}".into())),
            parts(|p| p.protocol = Some("FTP".into())),
            parts(|p| p.port = Some("0".into())),
            parts(|p| p.port = Some("080".into())),
            parts(|p| p.port = Some("65536".into())),
            parts(|p| p.host = Some("#{path}.example.org".into())),
            parts(|p| p.host = Some("a b".into())),
            parts(|p| p.host = Some(String::new())),
            parts(|p| p.path = Some("no-slash".into())),
            parts(|p| p.path = Some("/#{query}".into())),
            parts(|p| p.path = Some("/#{nope".into())),
            parts(|p| p.query = Some("?a=1".into())),
            parts(|p| p.query = Some("a\n".into())),
            parts(|p| p.query = Some("a".repeat(129))),
        ];
        for parts in bad {
            assert!(Redirect::new(parts.clone(), 302).is_err(), "{parts:?}");
        }
    }

    #[test]
    fn rules_and_actions_that_aws_would_refuse_fail_the_check() {
        let rule = |priority| Rule {
            priority,
            conditions: vec![Condition::PathPattern(vec![
                Pattern::path("/a").expect("path")
            ])],
            action: forward("tg-web"),
        };
        let fixed = |status_code, body: &str| Action::FixedResponse {
            status_code,
            content_type: None,
            body: body.into(),
        };
        type Change = Box<dyn Fn(&mut BalancerSpec)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "priority 0",
                Box::new(move |s| s.listeners[0].rules = vec![rule(0)]),
            ),
            (
                "priority 50001",
                Box::new(move |s| s.listeners[0].rules = vec![rule(50_001)]),
            ),
            (
                "same priority",
                Box::new(move |s| s.listeners[0].rules = vec![rule(5), rule(5)]),
            ),
            (
                "no condition",
                Box::new(move |s| {
                    let mut r = rule(1);
                    r.conditions.clear();
                    s.listeners[0].rules = vec![r]
                }),
            ),
            (
                "no value",
                Box::new(move |s| {
                    let mut r = rule(1);
                    r.conditions = vec![Condition::SourceIp(Vec::new())];
                    s.listeners[0].rules = vec![r]
                }),
            ),
            (
                "path pattern built as a header pattern",
                Box::new(move |s| {
                    let mut r = rule(1);
                    r.conditions = vec![Condition::PathPattern(vec![
                        Pattern::new("/a b").expect("pattern")
                    ])];
                    s.listeners[0].rules = vec![r]
                }),
            ),
            (
                "TCP rules",
                Box::new(move |s| s.listeners[1].rules = vec![rule(1)]),
            ),
            (
                "TCP fixed response",
                Box::new(move |s| s.listeners[1].default_action = fixed(200, "")),
            ),
            (
                "TCP stickiness",
                Box::new(|s| {
                    s.listeners[1].default_action = Action::Forward {
                        groups: vec![WeightedGroup {
                            target_group_id: "tg-db".into(),
                            weight: 1,
                        }],
                        stickiness_secs: Some(60),
                    }
                }),
            ),
            (
                "3XX",
                Box::new(move |s| s.listeners[0].default_action = fixed(302, "")),
            ),
            (
                "600",
                Box::new(move |s| s.listeners[0].default_action = fixed(600, "")),
            ),
            (
                "204 body",
                Box::new(move |s| s.listeners[0].default_action = fixed(204, "x")),
            ),
            (
                "long body",
                Box::new(move |s| s.listeners[0].default_action = fixed(200, &"x".repeat(1025))),
            ),
            (
                "NUL",
                Box::new(move |s| s.listeners[0].default_action = fixed(200, "a\0")),
            ),
            (
                "group twice",
                Box::new(|s| {
                    s.listeners[0].default_action = Action::Forward {
                        groups: vec![
                            WeightedGroup {
                                target_group_id: "tg-web".into(),
                                weight: 1,
                            };
                            2
                        ],
                        stickiness_secs: None,
                    }
                }),
            ),
            (
                "stickiness",
                Box::new(|s| {
                    s.listeners[0].default_action = Action::Forward {
                        groups: vec![WeightedGroup {
                            target_group_id: "tg-web".into(),
                            weight: 1,
                        }],
                        stickiness_secs: Some(604_801),
                    }
                }),
            ),
            (
                "rule to a TCP group",
                Box::new(move |s| {
                    let mut r = rule(1);
                    r.action = forward("tg-db");
                    s.listeners[0].rules = vec![r]
                }),
            ),
        ];
        for (what, change) in cases {
            let mut spec = spec();
            change(&mut spec);
            assert!(check(&spec).is_err(), "{what}");
        }
        let mut spec = spec();
        spec.listeners[0].rules = vec![rule(50_000), rule(1)];
        spec.listeners[0].default_action = fixed(204, "");
        assert!(check(&spec).is_ok());
    }
}
