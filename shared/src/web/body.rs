//! Reading a request body with a cap on its size.

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web::{BytesMut, Payload};
use futures_util::StreamExt as _;

/// Why a body was not read; each program words its own answer.
#[derive(Debug)]
pub enum BodyError {
    /// The declared or received size is over the limit (bytes).
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The connection failed mid-body; the text says how.
    Unreadable(String),
}

/// The request body, refused as soon as a declared `Content-Length` or the bytes
/// received pass `limit`. The buffer grows as bytes arrive: a declared length is
/// a claim, not a reason to allocate.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<BytesMut, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What went wrong mid-body, in words for the sender: actix's own text for an
/// incomplete body ("payload reached EOF before completing: None") says nothing
/// about what to fix.
fn unreadable(err: actix_web::error::PayloadError) -> BodyError {
    use actix_web::error::PayloadError;
    BodyError::Unreadable(match err {
        PayloadError::Incomplete(_) => "the body ended before it was complete: a chunk size \
            that is not hexadecimal or does not match its chunk, or a connection closed mid-body"
            .to_owned(),
        other => other.to_string(),
    })
}
