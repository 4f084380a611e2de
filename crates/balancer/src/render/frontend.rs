//! A listener's `frontend`: its binds, then its rules and default action.
//!
//! HAProxy runs every `http-request` line before it picks a backend, so rules cannot be
//! written as `use_backend`, `redirect` and `return` lines in priority order. Instead the
//! first rule whose conditions all hold names itself (`txn.nimbus_rule`), in priority
//! order, and each action is gated by that name (`rule-<priority>`), the default action by
//! no rule having matched (`!rule-chosen`).
//!
//! Weighted forwards share one draw per request (`txn.nimbus_pick`, in [0, 2³²)); each
//! group takes its share of the range. Group stickiness keeps the group a client drew in
//! the `AWSALBTG` cookie, as AWS does: a request carrying a group of the action goes there.

use std::fmt::Write;

use super::quote::{glob, log_format, sample_arg, word};
use crate::rules::{Action, Condition, ContentType, Redirect, Rule, WeightedGroup};
use crate::spec::{BalancerSpec, Listener, Protocol};

/// The cookie that keeps a client's target group across a weighted forward.
const GROUP_COOKIE: &str = "AWSALBTG";

/// The frontend of a listener.
fn frontend_name(port: u16) -> String {
    format!("listener-{port}")
}

pub(super) fn frontend(listener: &Listener, spec: &BalancerSpec) -> String {
    let mut out = format!(
        "\nfrontend {}\n    mode {}\n",
        frontend_name(listener.port),
        super::mode(listener.protocol)
    );
    for address in &spec.addresses {
        let _ = writeln!(out, "    bind {address}:{}", listener.port);
    }
    let phase = match listener.protocol {
        Protocol::Http => {
            out.push_str(
                "    option forwardfor\n    http-request set-header X-Forwarded-Proto http\n",
            );
            let _ = writeln!(
                out,
                "    http-request set-header X-Forwarded-Port {}",
                listener.port
            );
            "http-request"
        }
        Protocol::Tcp => "tcp-request content",
    };
    let mut rules: Vec<&Rule> = listener.rules.iter().collect();
    rules.sort_by_key(|rule| rule.priority);
    if !rules.is_empty() {
        out.push_str("    acl rule-chosen var(txn.nimbus_rule) -m found\n");
    }
    for rule in &rules {
        out.push_str(&rule_match(rule));
    }
    let actions = rules.iter().map(|rule| &rule.action);
    let draws = actions.chain([&listener.default_action]).any(
        |action| matches!(action, Action::Forward { groups, .. } if weighted(groups).len() > 1),
    );
    if draws {
        let _ = writeln!(out, "    {phase} set-var(txn.nimbus_pick) rand");
    }
    for rule in &rules {
        let gate = format!("rule-{}", rule.priority);
        out.push_str(&action(&rule.action, &gate));
    }
    let default_gate = if rules.is_empty() { "" } else { "!rule-chosen" };
    out.push_str(&action(&listener.default_action, default_gate));
    out
}

/// The ACLs of a rule's conditions, the line that names it when they all hold and no
/// earlier rule did, and the ACL its action is gated by.
fn rule_match(rule: &Rule) -> String {
    let mut out = String::new();
    let mut names = vec!["!rule-chosen".to_owned()];
    for (i, condition) in rule.conditions.iter().enumerate() {
        let name = format!("rule-{}-if-{i}", rule.priority);
        let _ = writeln!(out, "    acl {name} {}", acl(condition));
        names.push(name);
    }
    let _ = writeln!(
        out,
        "    http-request set-var(txn.nimbus_rule) int({}) if {}",
        rule.priority,
        names.join(" ")
    );
    let _ = writeln!(
        out,
        "    acl rule-{0} var(txn.nimbus_rule) -m int eq {0}",
        rule.priority
    );
    out
}

/// An ACL's fetch, match and patterns for a condition.
fn acl(condition: &Condition) -> String {
    let anchored = |patterns: &[crate::Pattern]| -> Vec<String> {
        patterns
            .iter()
            .map(|p| word(&format!("^{}$", glob(p.as_str(), ".*", ".", false))))
            .collect()
    };
    match condition {
        Condition::PathPattern(patterns) => {
            format!("path -m reg {}", anchored(patterns).join(" "))
        }
        Condition::HostHeader(patterns) => format!(
            "req.hdr(host),field(1,:) -m reg -i {}",
            anchored(patterns).join(" ")
        ),
        Condition::HttpHeader { name, values } => format!(
            "{} -m reg -i {}",
            word(&format!("req.fhdr({})", sample_arg(name.as_str()))),
            anchored(values).join(" ")
        ),
        Condition::HttpRequestMethod(methods) => {
            let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            format!("method -m str -- {}", methods.join(" "))
        }
        Condition::QueryString(pairs) => {
            let regexes: Vec<String> = pairs
                .iter()
                .map(|(key, value)| {
                    let key = key.as_ref().map_or("[^&=]*".to_owned(), |k| {
                        glob(k.as_str(), "[^&=]*", "[^&=]", true)
                    });
                    let value = glob(value.as_str(), "[^&]*", "[^&]", true);
                    word(&format!("(^|&){key}={value}(&|$)"))
                })
                .collect();
            format!("query -m reg -i {}", regexes.join(" "))
        }
        Condition::SourceIp(nets) => {
            let nets: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
            format!("src {}", nets.join(" "))
        }
    }
}

/// ` if <acls>`, or nothing when there is no ACL.
fn when(acls: &[&str]) -> String {
    let acls: Vec<&str> = acls.iter().copied().filter(|a| !a.is_empty()).collect();
    if acls.is_empty() {
        String::new()
    } else {
        format!(" if {}", acls.join(" "))
    }
}

fn weighted(groups: &[WeightedGroup]) -> Vec<&WeightedGroup> {
    groups.iter().filter(|g| g.weight > 0).collect()
}

/// The lines of an action, taken when `gate` holds (always when it is empty).
fn action(action: &Action, gate: &str) -> String {
    match action {
        Action::Forward {
            groups,
            stickiness_secs,
        } => forward(&weighted(groups), *stickiness_secs, gate),
        Action::Redirect(redirect) => redirect_lines(redirect, gate),
        Action::FixedResponse {
            status_code,
            content_type,
            body,
        } => {
            let mut line = format!("    http-request return status {status_code}");
            if !body.is_empty() {
                let content_type = content_type.unwrap_or(ContentType::TextPlain);
                let _ = write!(
                    line,
                    " content-type {} string {}",
                    content_type.as_str(),
                    word(body)
                );
            }
            format!("{line}{}\n", when(&[gate]))
        }
    }
}

fn forward(groups: &[&WeightedGroup], stickiness_secs: Option<u32>, gate: &str) -> String {
    let mut out = String::new();
    if let Some(secs) = stickiness_secs {
        for group in groups {
            let id = &group.target_group_id;
            let cookie = format!("{{ req.cook({GROUP_COOKIE}) -m str {id} }}");
            let _ = writeln!(out, "    use_backend {id}{}", when(&[gate, &cookie]));
        }
        let set_cookie = format!("{GROUP_COOKIE}=%[be_name]; Max-Age={secs}; Path=/");
        let _ = writeln!(
            out,
            "    http-response add-header Set-Cookie {}{}",
            word(&set_cookie),
            when(&[gate])
        );
    }
    let Some((last, others)) = groups.split_last() else {
        return out;
    };
    // Each group takes the next `weight / total` of the draw's range [0, 2³²).
    let total: u64 = groups.iter().map(|g| u64::from(g.weight)).sum();
    let mut upto = 0;
    for group in others {
        upto += u64::from(group.weight);
        let bound = (upto << 32) / total;
        let pick = format!("{{ var(txn.nimbus_pick) -m int lt {bound} }}");
        let _ = writeln!(
            out,
            "    use_backend {}{}",
            group.target_group_id,
            when(&[gate, &pick])
        );
    }
    if gate.is_empty() {
        let _ = writeln!(out, "    default_backend {}", last.target_group_id);
    } else {
        let _ = writeln!(out, "    use_backend {} if {gate}", last.target_group_id);
    }
    out
}

/// A redirect's `Location`, built from the request's parts where the redirect keeps them.
/// The query is set aside first, so that an empty one leaves no `?`.
fn redirect_lines(redirect: &Redirect, gate: &str) -> String {
    let parts = redirect.parts();
    let scheme = match parts.protocol.as_deref() {
        Some("HTTPS") => "https",
        _ => "http",
    };
    let host = expand(parts.host.as_deref().unwrap_or("#{host}"));
    let port = expand(parts.port.as_deref().unwrap_or("#{port}"));
    let path = expand(parts.path.as_deref().unwrap_or("/#{path}"));
    let base = format!("{scheme}://{host}:{port}{path}");
    let code = redirect.status_code();
    let query = parts.query.as_deref().unwrap_or("#{query}");
    if !query.contains("#{") {
        let location = if query.is_empty() {
            base
        } else {
            format!("{base}?{}", log_format(query))
        };
        return format!(
            "    http-request redirect location {} code {code}{}\n",
            word(&location),
            when(&[gate])
        );
    }
    let mut out = format!(
        "    http-request set-var-fmt(txn.nimbus_query) {}{}\n",
        word(&expand(query)),
        when(&[gate])
    );
    let with_query = format!("{base}?%[var(txn.nimbus_query)]");
    let _ = writeln!(
        out,
        "    http-request redirect location {} code {code}{}",
        word(&with_query),
        when(&[gate, "{ var(txn.nimbus_query) -m len gt 0 }"])
    );
    let _ = writeln!(
        out,
        "    http-request redirect location {} code {code}{}",
        word(&base),
        when(&[gate])
    );
    out
}

/// A redirect part as a log-format string: its text literal, AWS's placeholders as the
/// request's samples (`Redirect::new` let only known ones through).
fn expand(part: &str) -> String {
    const SAMPLES: [(&str, &str); 5] = [
        ("#{protocol}", "http"),
        ("#{host}", "%[req.hdr(host),field(1,:)]"),
        ("#{port}", "%[dst_port]"),
        ("#{path}", "%[path,regsub(^/,)]"),
        ("#{query}", "%[query]"),
    ];
    let mut out = String::new();
    let mut rest = part;
    while !rest.is_empty() {
        let next = SAMPLES
            .iter()
            .filter_map(|(name, sample)| rest.find(name).map(|at| (at, *name, *sample)))
            .min();
        let Some((at, name, sample)) = next else {
            out.push_str(&log_format(rest));
            break;
        };
        out.push_str(&log_format(&rest[..at]));
        out.push_str(sample);
        rest = &rest[at + name.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::render::render;
    use crate::render::tests::{haproxy_accepts, layout};
    use crate::spec::check;
    use crate::spec::tests::{forward, spec};
    use crate::*;

    fn paths(patterns: &[&str]) -> Condition {
        Condition::PathPattern(
            patterns
                .iter()
                .map(|p| Pattern::path(p).expect("path"))
                .collect(),
        )
    }

    fn redirect(parts: RedirectParts, code: u16) -> Action {
        Action::Redirect(Redirect::new(parts, code).expect("redirect"))
    }

    /// The HTTP listener of the test spec with a rule of each kind, hostile strings in
    /// every place a user's string can go, and a sticky weighted default.
    fn ruled() -> BalancerSpec {
        let mut spec = spec();
        let mut api = spec.target_groups[0].clone();
        api.id = "tg-api".into();
        spec.target_groups.push(api);
        let hostile = "q\"'x %[src] ${HOME} #c\n\\ 100%";
        spec.listeners[0].rules = vec![
            Rule {
                priority: 40,
                conditions: vec![paths(&["/old"])],
                action: redirect(
                    RedirectParts {
                        path: Some("/fixed".into()),
                        query: Some(String::new()),
                        ..RedirectParts::default()
                    },
                    302,
                ),
            },
            Rule {
                priority: 10,
                conditions: vec![paths(&["/api/*", "/v?/$x"])],
                action: forward("tg-api"),
            },
            Rule {
                priority: 30,
                conditions: vec![
                    Condition::HttpHeader {
                        name: HeaderName::new("x'y#$%").expect("name"),
                        values: vec![Pattern::new("v\"#%[${*").expect("value")],
                    },
                    Condition::QueryString(vec![
                        (
                            Some(Pattern::new("k*").expect("key")),
                            Pattern::new("v\\*").expect("value"),
                        ),
                        (None, Pattern::new("x").expect("value")),
                    ]),
                    Condition::SourceIp(vec!["10.0.0.0/8".parse().expect("cidr")]),
                ],
                action: redirect(
                    RedirectParts {
                        protocol: Some("HTTPS".into()),
                        host: Some("#{host}.example.org".into()),
                        path: Some("/new/#{path}%".into()),
                        ..RedirectParts::default()
                    },
                    301,
                ),
            },
            Rule {
                priority: 20,
                conditions: vec![
                    Condition::HostHeader(vec![Pattern::host("*.example.com").expect("host")]),
                    Condition::HttpRequestMethod(vec![
                        Method::new("GET").expect("method"),
                        Method::new("-X_Y").expect("method"),
                    ]),
                ],
                action: Action::FixedResponse {
                    status_code: 503,
                    content_type: Some(ContentType::TextHtml),
                    body: hostile.into(),
                },
            },
        ];
        spec.listeners[0].default_action = Action::Forward {
            groups: vec![
                WeightedGroup {
                    target_group_id: "tg-web".into(),
                    weight: 3,
                },
                WeightedGroup {
                    target_group_id: "tg-api".into(),
                    weight: 1,
                },
            ],
            stickiness_secs: Some(3600),
        };
        spec.addresses = vec![Ipv4Addr::new(10, 0, 1, 5)];
        spec
    }

    #[test]
    fn rules_gate_their_actions_in_priority_order_with_every_user_string_quoted() {
        let spec = ruled();
        let config = render(check(&spec).expect("checked"), &layout());
        haproxy_accepts(&config);
        let frontend = config
            .split("\nfrontend listener-80\n")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("the HTTP frontend");
        let expected = r#"    mode http
    bind 10.0.1.5:80
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port 80
    acl rule-chosen var(txn.nimbus_rule) -m found
    acl rule-10-if-0 path -m reg "^\\/api\\/.*\x24" "^\\/v.\\/\\\x24x\x24"
    http-request set-var(txn.nimbus_rule) int(10) if !rule-chosen rule-10-if-0
    acl rule-10 var(txn.nimbus_rule) -m int eq 10
    acl rule-20-if-0 req.hdr(host),field(1,:) -m reg -i "^.*\\.example\\.com\x24"
    acl rule-20-if-1 method -m str -- GET -X_Y
    http-request set-var(txn.nimbus_rule) int(20) if !rule-chosen rule-20-if-0 rule-20-if-1
    acl rule-20 var(txn.nimbus_rule) -m int eq 20
    acl rule-30-if-0 "req.fhdr(x\\\x27y\x23\x24%)" -m reg -i "^v\\\x22\\\x23\\%\\[\\\x24\\{.*\x24"
    acl rule-30-if-1 query -m reg -i "(^|&)k[^&=]*=v\\*(&|\x24)" "(^|&)[^&=]*=x(&|\x24)"
    acl rule-30-if-2 src 10.0.0.0/8
    http-request set-var(txn.nimbus_rule) int(30) if !rule-chosen rule-30-if-0 rule-30-if-1 rule-30-if-2
    acl rule-30 var(txn.nimbus_rule) -m int eq 30
    acl rule-40-if-0 path -m reg "^\\/old\x24"
    http-request set-var(txn.nimbus_rule) int(40) if !rule-chosen rule-40-if-0
    acl rule-40 var(txn.nimbus_rule) -m int eq 40
    http-request set-var(txn.nimbus_pick) rand
    use_backend tg-api if rule-10
    http-request return status 503 content-type text/html string "q\x22\x27x\x20%[src]\x20\x24{HOME}\x20\x23c\x0a\\\x20100%" if rule-20
    http-request set-var-fmt(txn.nimbus_query) "%[query]" if rule-30
    http-request redirect location "https://%[req.hdr(host),field(1,:)].example.org:%[dst_port]/new/%[path,regsub(^/,)]%%?%[var(txn.nimbus_query)]" code 301 if rule-30 { var(txn.nimbus_query) -m len gt 0 }
    http-request redirect location "https://%[req.hdr(host),field(1,:)].example.org:%[dst_port]/new/%[path,regsub(^/,)]%%" code 301 if rule-30
    http-request redirect location "http://%[req.hdr(host),field(1,:)]:%[dst_port]/fixed" code 302 if rule-40
    use_backend tg-web if !rule-chosen { req.cook(AWSALBTG) -m str tg-web }
    use_backend tg-api if !rule-chosen { req.cook(AWSALBTG) -m str tg-api }
    http-response add-header Set-Cookie "AWSALBTG=%[be_name];\x20Max-Age=3600;\x20Path=/" if !rule-chosen
    use_backend tg-web if !rule-chosen { var(txn.nimbus_pick) -m int lt 3221225472 }
    use_backend tg-api if !rule-chosen"#;
        assert_eq!(frontend, expected);
    }
}
