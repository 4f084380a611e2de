//! Listener and rule actions and rule conditions: read from the request, kept and answered
//! in the shapes of the API (`Action`, `RuleCondition`), checked once where they come in.

use serde::{Deserialize, Serialize};

use crate::{Elbv2Error, Result};

fn invalid(message: impl Into<String>) -> Elbv2Error {
    Elbv2Error::ValidationError(message.into())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Action {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_config: Option<ForwardConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_config: Option<RedirectConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_response_config: Option<FixedResponseConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ForwardConfig {
    #[serde(default)]
    pub target_groups: Vec<WeightedGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_group_stickiness_config: Option<StickinessConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct WeightedGroup {
    pub target_group_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StickinessConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RedirectConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub status_code: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FixedResponseConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_body: Option<String>,
    pub status_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// The target groups an action forwards to, with their weights.
impl Action {
    pub fn forwards(&self) -> Vec<(String, u16)> {
        match &self.forward_config {
            Some(config) => (config.target_groups.iter())
                .map(|g| (g.target_group_arn.clone(), g.weight.unwrap_or(1) as u16))
                .collect(),
            None => self
                .target_group_arn
                .iter()
                .map(|a| (a.clone(), 1))
                .collect(),
        }
    }

    /// Group stickiness of a forward, in seconds, when enabled.
    pub fn stickiness_secs(&self) -> Option<u32> {
        let config = self
            .forward_config
            .as_ref()?
            .target_group_stickiness_config
            .as_ref()?;
        (config.enabled == Some(true)).then(|| config.duration_seconds.unwrap_or(3600) as u32)
    }
}

/// Checks a list of actions (one terminal action: forward, redirect or fixed-response; the
/// authenticate actions need a service nimbus does not have) and writes each forward as AWS
/// answers it: both `TargetGroupArn` (one group) and `ForwardConfig`.
pub fn check_actions(actions: Vec<Action>, http: bool) -> Result<Vec<Action>> {
    if actions.len() != 1 {
        return Err(invalid(if actions.is_empty() {
            "At least one action must be specified"
        } else {
            "Only one forward, redirect or fixed-response action may be specified"
        }));
    }
    actions.into_iter().map(|a| check_action(a, http)).collect()
}

fn check_action(mut action: Action, http: bool) -> Result<Action> {
    let only_http = |name: &str| -> Result<()> {
        if http {
            Ok(())
        } else {
            Err(Elbv2Error::InvalidLoadBalancerAction(format!(
                "The action type '{name}' is not valid with a TCP listener"
            )))
        }
    };
    match action.kind.as_str() {
        "forward" => {
            let mut groups = match (&action.target_group_arn, action.forward_config.take()) {
                (Some(arn), None) => ForwardConfig {
                    target_groups: vec![WeightedGroup {
                        target_group_arn: arn.clone(),
                        weight: Some(1),
                    }],
                    target_group_stickiness_config: None,
                },
                (arn, Some(config)) => {
                    let single = config.target_groups.len() == 1
                        && arn.as_ref().is_none_or(|a| *a == config.target_groups[0].target_group_arn);
                    if arn.is_some() && !single {
                        return Err(invalid(
                            "You cannot specify both a target group ARN and a forward config with several target groups",
                        ));
                    }
                    config
                }
                (None, None) => {
                    return Err(invalid("A target group ARN must be specified for a forward action"))
                }
            };
            if groups.target_groups.is_empty() || groups.target_groups.len() > 5 {
                return Err(invalid("A forward action must name 1 to 5 target groups"));
            }
            for group in &mut groups.target_groups {
                crate::arns::check_arn(&group.target_group_arn, "targetgroup")?;
                let weight = group.weight.get_or_insert(1);
                if !(0..=999).contains(weight) {
                    return Err(invalid("Target group weights must be between 0 and 999"));
                }
            }
            if groups.target_groups.iter().all(|g| g.weight == Some(0)) {
                return Err(invalid("At least one target group must have a weight above 0"));
            }
            let stickiness = groups
                .target_group_stickiness_config
                .get_or_insert(StickinessConfig {
                    enabled: Some(false),
                    duration_seconds: None,
                });
            stickiness.enabled.get_or_insert(false);
            if let Some(secs) = stickiness.duration_seconds {
                if !(1..=604_800).contains(&secs) {
                    return Err(invalid("Stickiness duration must be between 1 and 604800 seconds"));
                }
            }
            if stickiness.enabled == Some(true) {
                only_http("forward with group stickiness")?;
                stickiness.duration_seconds.get_or_insert(3600);
            }
            action.target_group_arn = (groups.target_groups.len() == 1)
                .then(|| groups.target_groups[0].target_group_arn.clone());
            action.forward_config = Some(groups);
            action.redirect_config = None;
            action.fixed_response_config = None;
        }
        "redirect" => {
            only_http("redirect")?;
            let config = action
                .redirect_config
                .as_ref()
                .ok_or_else(|| invalid("A redirect action must have a redirect config"))?;
            if !matches!(config.status_code.as_str(), "HTTP_301" | "HTTP_302") {
                return Err(invalid("The redirect status code must be HTTP_301 or HTTP_302"));
            }
            if let Some(protocol) = &config.protocol {
                if !matches!(protocol.as_str(), "HTTP" | "HTTPS" | "#{protocol}") {
                    return Err(invalid("The redirect protocol must be HTTP, HTTPS or #{protocol}"));
                }
            }
        }
        "fixed-response" => {
            only_http("fixed-response")?;
            let config = action
                .fixed_response_config
                .as_ref()
                .ok_or_else(|| invalid("A fixed-response action must have a fixed-response config"))?;
            let code_ok = config.status_code.len() == 3
                && matches!(config.status_code.as_bytes()[0], b'2' | b'4' | b'5')
                && config.status_code.bytes().all(|b| b.is_ascii_digit());
            if !code_ok {
                return Err(invalid("The fixed-response status code must be 2XX, 4XX or 5XX"));
            }
            if config.message_body.as_ref().is_some_and(|b| b.len() > 1024) {
                return Err(invalid("The fixed-response message body can be at most 1024 characters"));
            }
            if let Some(content_type) = &config.content_type {
                let known = ["text/plain", "text/css", "text/html", "application/javascript", "application/json"];
                if !known.contains(&content_type.as_str()) {
                    return Err(invalid(format!("The content type '{content_type}' is not valid")));
                }
            }
        }
        "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => {
            return Err(Elbv2Error::Unsupported(format!(
                "The action type '{}' is not supported by nimbus: it needs an identity provider service",
                action.kind
            )))
        }
        other => {
            return Err(invalid(format!("The action type '{other}' is not valid")));
        }
    }
    action.order.get_or_insert(1);
    // What the data plane could not render is refused now, not at the next pass.
    crate::spec::action(&action)?;
    Ok(action)
}

/// A rule condition, as `RuleCondition`: the legacy `Field` + `Values`, or one config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_header_config: Option<ValuesConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_pattern_config: Option<ValuesConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_header_config: Option<HttpHeaderConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_string_config: Option<QueryStringConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request_method_config: Option<ValuesConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip_config: Option<ValuesConfig>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ValuesConfig {
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HttpHeaderConfig {
    pub http_header_name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QueryStringConfig {
    #[serde(default)]
    pub values: Vec<KeyValue>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct KeyValue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
}

/// Checks conditions (1–5, one of each field but http-header and query-string) and writes
/// each as AWS answers it: the field name and its config, with `Values` for the two fields
/// that had them (path-pattern and host-header).
pub fn check_conditions(conditions: Vec<Condition>) -> Result<Vec<Condition>> {
    if conditions.is_empty() || conditions.len() > 5 {
        return Err(invalid("A rule must have 1 to 5 conditions"));
    }
    let checked: Vec<Condition> = conditions
        .into_iter()
        .map(check_condition)
        .collect::<Result<_>>()?;
    let mut fields: Vec<&str> = checked.iter().filter_map(|c| c.field.as_deref()).collect();
    fields.retain(|f| !matches!(*f, "http-header" | "query-string"));
    let unique = fields.len()
        == fields
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
    if !unique {
        return Err(invalid("A rule can have only one condition of each field"));
    }
    Ok(checked)
}

fn check_condition(condition: Condition) -> Result<Condition> {
    let Condition {
        field,
        values,
        host_header_config,
        path_pattern_config,
        http_header_config,
        query_string_config,
        http_request_method_config,
        source_ip_config,
    } = condition;
    let field = field.ok_or_else(|| invalid("A condition must have a field"))?;
    let from = |config: Option<ValuesConfig>| -> Result<Vec<String>> {
        match (config, values.is_empty()) {
            (Some(config), true) => Ok(config.values),
            (None, _) => Ok(values.clone()),
            (Some(_), false) => Err(invalid(format!(
                "You cannot specify both Values and a config for the field '{field}'"
            ))),
        }
    };
    let mut out = Condition {
        field: Some(field.clone()),
        values: Vec::new(),
        host_header_config: None,
        path_pattern_config: None,
        http_header_config: None,
        query_string_config: None,
        http_request_method_config: None,
        source_ip_config: None,
    };
    let nonempty = |list: &Vec<String>| -> Result<()> {
        if list.is_empty() || list.len() > 5 {
            Err(invalid(format!(
                "The condition '{field}' must have 1 to 5 values"
            )))
        } else if list.iter().any(|v| v.is_empty() || v.len() > 128) {
            Err(invalid(format!(
                "A value of the condition '{field}' must be 1 to 128 characters"
            )))
        } else {
            Ok(())
        }
    };
    match field.as_str() {
        "path-pattern" => {
            let list = from(path_pattern_config)?;
            nonempty(&list)?;
            out.values = list.clone();
            out.path_pattern_config = Some(ValuesConfig { values: list });
        }
        "host-header" => {
            let list = from(host_header_config)?;
            nonempty(&list)?;
            out.values = list.clone();
            out.host_header_config = Some(ValuesConfig { values: list });
        }
        "http-request-method" => {
            let list = from(http_request_method_config)?;
            nonempty(&list)?;
            out.http_request_method_config = Some(ValuesConfig { values: list });
        }
        "source-ip" => {
            let list = from(source_ip_config)?;
            nonempty(&list)?;
            for cidr in &list {
                cidr.parse::<ipnet::Ipv4Net>()
                    .map_err(|_| invalid(format!("'{cidr}' is not a valid IPv4 CIDR block")))?;
            }
            out.source_ip_config = Some(ValuesConfig { values: list });
        }
        "http-header" => {
            let config = http_header_config
                .ok_or_else(|| invalid("An http-header condition needs HttpHeaderConfig"))?;
            nonempty(&config.values)?;
            out.http_header_config = Some(config);
        }
        "query-string" => {
            let config = query_string_config
                .ok_or_else(|| invalid("A query-string condition needs QueryStringConfig"))?;
            if config.values.is_empty() || config.values.len() > 5 {
                return Err(invalid("A query-string condition must have 1 to 5 values"));
            }
            out.query_string_config = Some(config);
        }
        other => {
            return Err(invalid(format!(
                "The condition field '{other}' is not valid"
            )))
        }
    }
    crate::spec::condition(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(json: serde_json::Value) -> Result<Vec<Action>> {
        check_actions(vec![serde_json::from_value(json).expect("action")], true)
    }

    #[test]
    fn a_forward_is_answered_with_its_arn_and_its_config() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/a/0123456789abcdef";
        let checked =
            action(serde_json::json!({"Type": "forward", "TargetGroupArn": arn})).unwrap();
        let answer = serde_json::to_value(&checked[0]).unwrap();
        assert_eq!(answer["TargetGroupArn"], arn);
        assert_eq!(answer["ForwardConfig"]["TargetGroups"][0]["Weight"], 1);
        assert_eq!(
            answer["ForwardConfig"]["TargetGroupStickinessConfig"]["Enabled"],
            false
        );
        assert_eq!(checked[0].forwards(), vec![(arn.to_owned(), 1)]);
        // All weights 0, a bad ARN, an authenticate action, two actions: refused.
        let zero = serde_json::json!({"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": 0}]}});
        assert!(action(zero).is_err());
        assert!(action(serde_json::json!({"Type": "forward", "TargetGroupArn": "x"})).is_err());
        let oidc = serde_json::json!({"Type": "authenticate-oidc"});
        assert!(matches!(action(oidc), Err(Elbv2Error::Unsupported(_))));
        let unknown_member = serde_json::json!({"Type": "forward", "AuthenticateOidcConfig": {}});
        assert!(serde_json::from_value::<Action>(unknown_member).is_err());
    }

    #[test]
    fn fixed_responses_and_redirects_are_checked_and_http_only() {
        let fixed = serde_json::json!({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503", "MessageBody": "down"}});
        assert!(action(fixed.clone()).is_ok());
        let on_tcp = check_actions(vec![serde_json::from_value(fixed).unwrap()], false);
        assert!(matches!(
            on_tcp,
            Err(Elbv2Error::InvalidLoadBalancerAction(_))
        ));
        let bad = serde_json::json!({"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "302"}});
        assert!(action(bad).is_err());
        let redirect = serde_json::json!({"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Path": "/new"}});
        assert!(action(redirect).is_ok());
    }

    #[test]
    fn conditions_are_answered_with_field_and_config() {
        let legacy: Condition = serde_json::from_value(
            serde_json::json!({"Field": "path-pattern", "Values": ["/api/*"]}),
        )
        .unwrap();
        let checked = check_conditions(vec![legacy]).unwrap();
        let answer = serde_json::to_value(&checked[0]).unwrap();
        assert_eq!(answer["Values"][0], "/api/*");
        assert_eq!(answer["PathPatternConfig"]["Values"][0], "/api/*");
        let twice: Vec<Condition> = (0..2)
            .map(|_| {
                serde_json::from_value(serde_json::json!({"Field": "host-header", "Values": ["a"]}))
                    .unwrap()
            })
            .collect();
        assert!(check_conditions(twice).is_err());
        let bad_ip: Condition = serde_json::from_value(
            serde_json::json!({"Field": "source-ip", "SourceIpConfig": {"Values": ["x"]}}),
        )
        .unwrap();
        assert!(check_conditions(vec![bad_ip]).is_err());
        assert!(check_conditions(vec![]).is_err());
    }
}
