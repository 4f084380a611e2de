//! How a user's string is written into `haproxy.cfg`, one layer at a time:
//!
//! - [`word`]: the config parser's. One double-quoted word in which every byte that could
//!   mean something to it (`"`, `'`, `#`, `$` and its `${…}` expansion, spaces, control
//!   characters, anything not ASCII) is a `\xNN` escape, and `\` is `\\`.
//! - [`log_format`]: a log-format string's (`lf-string`, `redirect location`, where `%[…]`
//!   is a sample): a literal `%` is `%%`.
//! - [`sample_arg`]: a sample fetch's argument (`req.fhdr(<name>)`): quotes and `\` are
//!   escaped with `\`.
//! - [`glob`]: a regular expression matching an AWS wildcard pattern, every other
//!   punctuation character escaped.

use std::fmt::Write;

/// Bytes written as they are inside a quoted word: none of them means anything to the
/// config parser there.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_./:=@,+~^*?()[]{}|&!<>;%".contains(&b)
}

/// `text` as one double-quoted word of the config.
pub fn word(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for b in text.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b if plain(b) => out.push(char::from(b)),
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    out
}

/// Literal text inside a log-format string.
pub fn log_format(text: &str) -> String {
    text.replace('%', "%%")
}

/// Literal text as a sample fetch's argument.
pub fn sample_arg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\'' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regular expression (PCRE) for an AWS wildcard pattern: `*` becomes `many`, `?` becomes
/// `one`, and with `escapes` a backslash makes the next character literal (query strings).
pub fn glob(pattern: &str, many: &str, one: &str, escapes: bool) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = match c {
            '*' => {
                out.push_str(many);
                continue;
            }
            '?' => {
                out.push_str(one);
                continue;
            }
            '\\' if escapes => chars.next().unwrap_or('\\'),
            c => c,
        };
        if literal.is_ascii_punctuation() || literal == ' ' {
            out.push('\\');
        }
        out.push(literal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_escapes_everything_the_config_parser_reads() {
        assert_eq!(word("/api/*"), "\"/api/*\"");
        assert_eq!(
            word("a\"b'c d#e$f${HOME}\\g\nh\té"),
            "\"a\\x22b\\x27c\\x20d\\x23e\\x24f\\x24{HOME}\\\\g\\x0ah\\x09\\xc3\\xa9\""
        );
        assert_eq!(word("100%[src]"), "\"100%[src]\"");
    }

    #[test]
    fn log_format_and_sample_args_escape_their_own_syntax() {
        assert_eq!(log_format("100%[src]%"), "100%%[src]%%");
        assert_eq!(sample_arg("x'y\"z\\"), "x\\'y\\\"z\\\\");
    }

    #[test]
    fn globs_become_regexes_with_literal_punctuation() {
        assert_eq!(glob("/api/*", ".*", ".", false), "\\/api\\/.*");
        assert_eq!(glob("a.b?c$", ".*", ".", false), "a\\.b.c\\$");
        assert_eq!(
            glob("(x)[y]{z}|+^", ".*", ".", false),
            "\\(x\\)\\[y\\]\\{z\\}\\|\\+\\^"
        );
        assert_eq!(
            glob("a\\*b\\\\c*", "[^&]*", "[^&]", true),
            "a\\*b\\\\c[^&]*"
        );
        assert_eq!(glob("a\\b", ".*", ".", false), "a\\\\b");
        assert_eq!(glob("a b", ".*", ".", false), "a\\ b");
    }
}
