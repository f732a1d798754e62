//! How both programs answer a request they refuse: the status their
//! `ResponseError` names, the body `{"error": "…"}`, the log line and the headers
//! that go with it. Each program's error enum says only its statuses, messages,
//! Retry-After times and log lines; [`answer`] does the rest the same way for both.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use std::fmt::{Debug, Display};

/// How a refusal is logged.
pub enum LogAs<'a> {
    /// The client's doing (bad input, a limit reached): at debug, so that a
    /// misbehaving client cannot fill the log.
    Rejected,
    /// Something the program depends on is unavailable: a warning, `message` and
    /// the cause.
    Unavailable {
        /// The log line's message, e.g. "Redis unavailable".
        message: &'static str,
        /// Why, e.g. the Redis error.
        cause: &'a dyn Display,
    },
    /// A bug or an unexpected failure: an error with the cause's whole chain (the
    /// client is only told to read the log).
    Internal(&'a dyn Debug),
}

/// What a program's error says beyond its status (`status_code`) and message
/// (`Display`) for [`answer`] to build the response.
pub trait ErrorAnswer: ResponseError {
    /// How to log this refusal; a client's doing unless said otherwise.
    fn log_as(&self) -> LogAs<'_> {
        LogAs::Rejected
    }

    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    fn retry_after(&self) -> Option<u64> {
        None
    }

    /// A field sent beside `"error"`, for a client that acts on more than the text.
    fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
        None
    }
}

/// The response for `refusal`, logged as it says: its status, `Retry-After` when
/// it has one, and the body `{"error": "<its message>"}` with its detail.
pub fn answer(refusal: &impl ErrorAnswer) -> HttpResponse {
    let status = refusal.status_code();
    match refusal.log_as() {
        LogAs::Rejected => tracing::debug!(%status, error = %refusal, "request rejected"),
        LogAs::Unavailable { message, cause } => tracing::warn!(%cause, "{message}"),
        LogAs::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
    }
    let mut response = HttpResponse::build(status);
    if let Some(seconds) = refusal.retry_after() {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still come: close rather than read it as a
        // next request, and free the connection now.
        response.force_close();
    }
    let mut body = serde_json::Map::new();
    body.insert("error".to_owned(), refusal.to_string().into());
    if let Some((name, value)) = refusal.detail() {
        body.insert(name.to_owned(), value);
    }
    response.json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error("busy; retry later")]
        Busy,
        #[error("too slow")]
        Slow,
        #[error("still running")]
        Running(Vec<u64>),
    }

    impl ResponseError for TestError {
        fn status_code(&self) -> StatusCode {
            match self {
                TestError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                TestError::Slow => StatusCode::REQUEST_TIMEOUT,
                TestError::Running(_) => StatusCode::CONFLICT,
            }
        }
    }

    impl ErrorAnswer for TestError {
        fn retry_after(&self) -> Option<u64> {
            matches!(self, TestError::Busy).then_some(3)
        }

        fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
            match self {
                TestError::Running(tasks) => Some(("in_flight", serde_json::json!(tasks))),
                _ => None,
            }
        }
    }

    async fn body(response: HttpResponse) -> serde_json::Value {
        let bytes = actix_web::body::to_bytes(response.into_body()).await;
        serde_json::from_slice(&bytes.expect("a body")).expect("a JSON body")
    }

    #[actix_web::test]
    async fn a_refusal_is_its_status_its_retry_after_and_its_message_as_json() {
        let response = answer(&TestError::Busy);

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": "busy; retry later"})
        );
    }

    #[actix_web::test]
    async fn a_detail_is_sent_beside_the_error() {
        let response = answer(&TestError::Running(vec![3, 7]));

        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": "still running", "in_flight": [3, 7]})
        );
    }

    #[test]
    fn a_408_closes_the_connection() {
        let response = answer(&TestError::Slow);

        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(response.head().connection_type() == actix_web::http::ConnectionType::Close);
    }
}
