//! Timestamps as the protocols carry them: ISO 8601 text in Query and XML, epoch seconds in
//! JSON and CBOR. Inside nimbus they are ISO 8601 UTC strings with milliseconds.

pub use nimbus_core::iso8601;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// ISO 8601 as clients send it (with or without fractions or an offset, or a plain date), or
/// epoch seconds.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .or_else(|_| time::Date::parse(text, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()))
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(from_epoch))
}

pub fn from_epoch(seconds: f64) -> Option<OffsetDateTime> {
    if !seconds.is_finite() {
        return None;
    }
    let nanos = (seconds * 1e9).round();
    // Beyond what `time` represents (and any client sends): not a timestamp.
    if nanos.abs() >= i128::MAX as f64 {
        return None;
    }
    OffsetDateTime::from_unix_timestamp_nanos(nanos as i128).ok()
}

/// Epoch seconds, with the milliseconds as a fraction.
pub fn epoch_seconds(at: OffsetDateTime) -> f64 {
    (at.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_clients_send_and_writes_milliseconds() {
        for text in [
            "2026-11-29T12:00:00Z",
            "2026-11-29T12:00:00.000Z",
            "2026-11-29T13:00:00+01:00",
            "1795953600",
            "1795953600.0",
        ] {
            let at = parse(text).expect(text);
            assert_eq!(iso8601(at), "2026-11-29T12:00:00.000Z", "{text}");
            assert_eq!(epoch_seconds(at), 1_795_953_600.0);
        }
        assert_eq!(
            parse("2026-11-29").map(iso8601).as_deref(),
            Some("2026-11-29T00:00:00.000Z")
        );
        assert!(parse("yesterday").is_none() && from_epoch(f64::NAN).is_none());
        assert!(from_epoch(1e300).is_none());
    }
}
