//! `application/x-www-form-urlencoded` decoding, strict: bad escapes and invalid UTF-8 are errors.

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    #[error("The request contains a malformed percent-encoding.")]
    BadEscape,
    #[error("The request is not valid UTF-8.")]
    InvalidUtf8,
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes one key or value; `+` is a space, as in every form and query AWS clients send.
fn decode_component(input: &[u8]) -> Result<String, ProtoError> {
    let mut bytes = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'%' => {
                let high = input.get(i + 1).copied().and_then(hex_value);
                let low = input.get(i + 2).copied().and_then(hex_value);
                match (high, low) {
                    (Some(h), Some(l)) => bytes.push(h << 4 | l),
                    _ => return Err(ProtoError::BadEscape),
                }
                i += 3;
            }
            b'+' => {
                bytes.push(b' ');
                i += 1;
            }
            other => {
                bytes.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(bytes).map_err(|_| ProtoError::InvalidUtf8)
}

/// Decodes a form body or query string into its pairs, in order.
pub fn parse_form(input: &[u8]) -> Result<Vec<(String, String)>, ProtoError> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Ok((decode_component(key)?, decode_component(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let pairs =
            parse_form(b"Action=DescribeRegions&Filter.1.Name=a+b%2Ac&&Empty&K=").expect("valid");
        assert_eq!(
            pairs,
            vec![
                ("Action".into(), "DescribeRegions".into()),
                ("Filter.1.Name".into(), "a b*c".into()),
                ("Empty".into(), "".into()),
                ("K".into(), "".into()),
            ]
        );
        assert_eq!(parse_form(b"a=%E2%82%AC").expect("utf8")[0].1, "\u{20ac}");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_form(b"a=%"), Err(ProtoError::BadEscape));
        assert_eq!(parse_form(b"a=%G1"), Err(ProtoError::BadEscape));
        assert_eq!(parse_form(b"a=%FF"), Err(ProtoError::InvalidUtf8));
        assert_eq!(parse_form(b"\xff=1"), Err(ProtoError::InvalidUtf8));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = parse_form(&input);
        }

        #[test]
        fn decodes_what_an_encoder_wrote(pairs in proptest::collection::vec(("\\PC+", "\\PC*"), 0..6)) {
            use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
            let encoded: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", utf8_percent_encode(k, NON_ALPHANUMERIC), utf8_percent_encode(v, NON_ALPHANUMERIC)))
                .collect();
            proptest::prop_assert_eq!(parse_form(encoded.join("&").as_bytes()), Ok(pairs));
        }
    }
}
