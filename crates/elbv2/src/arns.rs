//! ARNs of load balancers, target groups, listeners and rules, as AWS writes them.

use crate::{Elbv2, Elbv2Error, Result};

/// 16 lowercase hex digits, the random part AWS puts at the end of each ARN.
pub fn random_hex() -> String {
    let id = nimbus_core::new_id("x");
    let hex = id.trim_start_matches("x-");
    hex[hex.len().saturating_sub(16)..].to_owned()
}

impl Elbv2 {
    fn arn_prefix(&self) -> String {
        format!(
            "arn:aws:elasticloadbalancing:{}:{}:",
            self.region, self.account_id
        )
    }

    /// `…:loadbalancer/app/NAME/HEX` (`net/` for a network load balancer).
    pub(crate) fn load_balancer_arn(&self, kind: &str, name: &str, hex: &str) -> String {
        format!("{}loadbalancer/{kind}/{name}/{hex}", self.arn_prefix())
    }

    pub(crate) fn target_group_arn(&self, name: &str, hex: &str) -> String {
        format!("{}targetgroup/{name}/{hex}", self.arn_prefix())
    }

    /// A listener's ARN: its balancer's, `loadbalancer` read as `listener`, and its own hex.
    pub(crate) fn listener_arn(&self, load_balancer_arn: &str) -> String {
        format!(
            "{}/{}",
            load_balancer_arn.replacen(":loadbalancer/", ":listener/", 1),
            random_hex()
        )
    }

    pub(crate) fn rule_arn(&self, listener_arn: &str) -> String {
        format!(
            "{}/{}",
            listener_arn.replacen(":listener/", ":listener-rule/", 1),
            random_hex()
        )
    }
}

/// The ID a target group's backend has in the data plane: `tg-` and its ARN's hex.
pub fn group_backend_id(target_group_arn: &str) -> String {
    format!("tg-{}", last_part(target_group_arn))
}

fn last_part(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

/// Checks that `arn` is of this service and of `kind` (`loadbalancer`, `targetgroup`…);
/// AWS answers a malformed one with ValidationError.
pub fn check_arn(arn: &str, kind: &str) -> Result<()> {
    let resource = arn
        .strip_prefix("arn:aws:elasticloadbalancing:")
        .and_then(|rest| rest.splitn(3, ':').nth(2));
    match resource {
        Some(resource) if resource.starts_with(&format!("{kind}/")) => Ok(()),
        _ => Err(Elbv2Error::ValidationError(format!(
            "'{arn}' is not a valid {kind} ARN"
        ))),
    }
}

/// Names of load balancers and target groups: 1–32 letters, digits and hyphens, not
/// starting or ending with a hyphen (and a balancer's not starting with `internal-`).
pub fn check_name(name: &str, what: &str) -> Result<()> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Elbv2Error::ValidationError(format!(
            "{what} name '{name}' can have a maximum of 32 characters, can contain only \
             alphanumeric characters or hyphens, and must not begin or end with a hyphen"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns_are_checked_as_aws_does() {
        assert!(check_name("web-1", "Load balancer").is_ok());
        for bad in ["", "-web", "web-", "web_1", "a b", &"x".repeat(33)] {
            assert!(check_name(bad, "Load balancer").is_err(), "{bad}");
        }
        let arn =
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/0123456789abcdef";
        assert!(check_arn(arn, "targetgroup").is_ok());
        assert!(check_arn(arn, "loadbalancer").is_err());
        assert!(check_arn("nonsense", "targetgroup").is_err());
        assert_eq!(group_backend_id(arn), "tg-0123456789abcdef");
        assert_eq!(random_hex().len(), 16);
    }
}
