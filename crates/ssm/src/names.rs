//! The rules of parameter names, paths, selectors (`name:3`, `name:label`) and labels, as
//! Parameter Store states them.

use crate::{Result, SsmError};

/// The longest name (the ARN around it may be 2048 characters).
const MAX_NAME: usize = 1011;
/// Levels of a hierarchy: `/a/b/c` has three.
const MAX_LEVELS: usize = 15;

const NAME_RULES: &str = "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_";

fn bad_name() -> SsmError {
    SsmError::Validation(NAME_RULES.to_owned())
}

fn segment_allowed(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A name's own rules: letters, digits and `.-_` in segments split by `/`, fully qualified
/// (a leading `/`) when it has a hierarchy, at most 15 levels.
pub fn check_name(name: &str) -> Result<()> {
    if name.len() > MAX_NAME {
        return Err(SsmError::Validation(format!(
            "Parameter name {name:.64}… is longer than {MAX_NAME} characters."
        )));
    }
    let segments: Vec<&str> = match name.strip_prefix('/') {
        Some(path) => path.split('/').collect(),
        None if name.contains('/') => {
            return Err(SsmError::Validation(
                "Parameter name must be a fully qualified name.".to_owned(),
            ))
        }
        None => vec![name],
    };
    if !segments.iter().all(|s| segment_allowed(s)) {
        return Err(bad_name());
    }
    if segments.len() > MAX_LEVELS {
        return Err(SsmError::HierarchyLevelLimitExceeded(format!(
            "A hierarchy can have a maximum of {MAX_LEVELS} levels; {name} has {}.",
            segments.len()
        )));
    }
    Ok(())
}

/// Whether `name` is under a prefix AWS keeps for itself: `aws` or `ssm` (any case), with or
/// without the leading slash.
fn reserved_prefix(name: &str) -> Option<&'static str> {
    let bare = name.strip_prefix('/').unwrap_or(name).to_ascii_lowercase();
    ["aws", "ssm"]
        .into_iter()
        .find(|prefix| bare.starts_with(prefix))
}

/// A name a request may write: its own rules, and not under `aws` (AWS's public parameters,
/// `AccessDeniedException`) or `ssm` (`ValidationException`).
pub fn check_writable(name: &str) -> Result<()> {
    match reserved_prefix(name) {
        Some("aws") => Err(SsmError::AccessDenied(format!(
            "No access to reserved parameter name: {name}."
        ))),
        Some(_) => Err(bad_name()),
        None => check_name(name),
    }
}

/// A path of GetParametersByPath or a `Path` filter: `/`, or a fully qualified name with
/// or without a trailing slash. Answers it without the trailing slash (`/` stays).
pub fn check_path(path: &str) -> Result<&str> {
    if !path.starts_with('/') {
        return Err(SsmError::Validation(
            "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\"."
                .to_owned(),
        ));
    }
    let trimmed = match path.strip_suffix('/') {
        Some("") | None => path,
        Some(trimmed) => trimmed,
    };
    if trimmed != "/" {
        check_name(trimmed)?;
    }
    Ok(trimmed)
}

/// What a `name:selector` picks: the current version, a version number or a label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Current,
    Version(u64),
    Label(String),
}

/// Splits `name:selector` (names have no colon), checking the name.
pub fn parse_selector(requested: &str) -> Result<(&str, Selector)> {
    let (name, selector) = match requested.split_once(':') {
        None => (requested, Selector::Current),
        Some((name, text)) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            let version = text.parse().map_err(|_| {
                SsmError::Validation(format!("The version {text} of {name} is out of range."))
            })?;
            (name, Selector::Version(version))
        }
        Some((name, label)) => {
            check_label(label).map_err(SsmError::Validation)?;
            (name, Selector::Label(label.to_owned()))
        }
    };
    check_name(name)?;
    Ok((name, selector))
}

/// A label's rules; the message says which one it breaks.
pub fn check_label(label: &str) -> std::result::Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    let lower = label.to_ascii_lowercase();
    if label.is_empty() || label.len() > 100 || !label.chars().all(allowed) {
        Err(format!(
            "The label {label} is not valid: up to 100 letters, numbers, periods, hyphens and underscores."
        ))
    } else if label.starts_with(|c: char| c.is_ascii_digit()) {
        Err(format!("The label {label} cannot begin with a number."))
    } else if lower.starts_with("aws") || lower.starts_with("ssm") {
        Err(format!(
            "The label {label} cannot begin with \"aws\" or \"ssm\"."
        ))
    } else {
        Ok(())
    }
}

/// Whether `name` lies under `path` (already checked by [`check_path`]): one level down, or
/// any level when `recursive`.
pub fn is_under(name: &str, path: &str, recursive: bool) -> bool {
    let base = if path == "/" { "" } else { path };
    let Some(rest) = name
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    !rest.is_empty() && (recursive || !rest.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_parameter_store_rules() {
        for good in ["db-password", "/app/prod/db.url", "/a_b/C-9", "x"] {
            assert!(check_writable(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/",
            "a/b",
            "/a//b",
            "/a/",
            "with space",
            "/a/b$",
            "quote\"d",
        ] {
            assert!(
                matches!(check_writable(bad), Err(SsmError::Validation(_))),
                "{bad}"
            );
        }
        let deep = "/l".repeat(16);
        assert!(matches!(
            check_writable(&deep),
            Err(SsmError::HierarchyLevelLimitExceeded(_))
        ));
        assert!(check_writable(&"/l".repeat(15)).is_ok());
    }

    #[test]
    fn aws_and_ssm_prefixes_are_reserved_for_writes_only() {
        for name in ["/aws/service/x", "aws-thing", "/AWS/x"] {
            assert!(
                matches!(check_writable(name), Err(SsmError::AccessDenied(_))),
                "{name}"
            );
            assert!(check_name(name).is_ok(), "{name} can be read");
        }
        assert!(matches!(
            check_writable("/ssm/x"),
            Err(SsmError::Validation(_))
        ));
    }

    #[test]
    fn selectors_pick_a_version_or_a_label() {
        assert_eq!(parse_selector("/a/b").unwrap(), ("/a/b", Selector::Current));
        assert_eq!(
            parse_selector("/a/b:3").unwrap(),
            ("/a/b", Selector::Version(3))
        );
        assert_eq!(
            parse_selector("/a/b:prod").unwrap(),
            ("/a/b", Selector::Label("prod".into()))
        );
        assert!(parse_selector("/a/b:").is_err());
        assert!(parse_selector("/a/b:aws-x").is_err());
    }

    #[test]
    fn labels_follow_their_rules() {
        assert!(check_label("prod").is_ok() && check_label("Release_1.2-b").is_ok());
        for bad in ["", "1st", "awsLabel", "SSM", "with space", &"l".repeat(101)] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_contain_one_level_or_all() {
        assert_eq!(check_path("/app/").unwrap(), "/app");
        assert_eq!(check_path("/").unwrap(), "/");
        assert!(check_path("app").is_err());
        assert!(is_under("/app/a", "/app", false));
        assert!(!is_under("/app/a/b", "/app", false));
        assert!(is_under("/app/a/b", "/app", true));
        assert!(!is_under("/application", "/app", true));
        assert!(is_under("/top", "/", false) && !is_under("/top/x", "/", false));
        assert!(!is_under("plain", "/", true));
    }
}
