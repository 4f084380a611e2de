//! `Content-Encoding: gzip` request bodies (boto3 gzips CloudWatch bodies above 10 KiB), for
//! every service. SigV4 signs the body as sent, so the gate checks the compressed bytes and
//! the codecs read the decompressed ones. Decompression stops at [`crate::MAX_BODY_BYTES`]:
//! a small body that inflates beyond it (a zip bomb) is refused with 413, never held whole.

use std::io::Read;

use axum::http::{HeaderMap, StatusCode};

use crate::{ApiError, MAX_BODY_BYTES};

/// Whether the body was gzipped by the client.
pub(crate) fn is_gzipped(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::CONTENT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("gzip"))
}

/// The decompressed body, at most [`MAX_BODY_BYTES`] long.
pub(crate) fn gunzip(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut inflated = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|e| {
            ApiError::bad_request(
                "MalformedInput",
                format!("The request body is declared gzip but cannot be decompressed: {e}."),
            )
        })?;
    if inflated.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request body must be at most {MAX_BODY_BYTES} bytes once decompressed."),
        ));
    }
    Ok(inflated)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn inflates_within_the_limit_and_refuses_bombs() {
        assert_eq!(
            gunzip(&gzip(b"Action=ListMetrics")).expect("ok"),
            b"Action=ListMetrics"
        );
        let bomb = gzip(&vec![0u8; MAX_BODY_BYTES + 1]);
        assert!(bomb.len() < 10_000);
        assert_eq!(
            gunzip(&bomb).expect_err("bomb").status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            gunzip(b"not gzip").expect_err("bad").status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn reads_the_header() {
        let mut headers = HeaderMap::new();
        assert!(!is_gzipped(&headers));
        headers.insert("content-encoding", "GZIP".parse().expect("value"));
        assert!(is_gzipped(&headers));
    }
}
