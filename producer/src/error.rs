//! Errors a client of the web app can meet, each mapped to a precise status and a
//! JSON body `{"error": "what went wrong and what to do"}`.

use crate::batches::{KEEP_FINISHED, RegistryFull};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use taskhooks_shared::web::{BodyError, error_body};

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request's body or headers are not acceptable; the text says why.
    #[error("{0}")]
    BadRequest(String),
    #[error("the body is over {limit} bytes; send {{\"min\", \"max\", \"pace_ms\"}} only")]
    TooLarge { limit: usize },
    /// A state-changing request was not sent as JSON.
    #[error(
        "send this request as application/json (even with an empty body), got content type {0:?}; \
         with curl: -H 'content-type: application/json'"
    )]
    NotJson(String),
    #[error(
        "no batch {0:?}: it never existed here, or it finished more than {minutes} minutes ago; start a new one with POST /producetasks",
        minutes = KEEP_FINISHED.as_secs() / 60
    )]
    UnknownBatch(String),
    #[error("{0}")]
    TooManyBatches(#[from] RegistryFull),
    /// The server is shutting down and starts nothing new.
    #[error("the producer is shutting down and starts no new batches; try again once it is back")]
    ShuttingDown,
    /// A bug or an unexpected failure on our side; the cause is logged.
    #[error("internal error; see the producer's log")]
    Internal(#[source] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownBatch(_) => StatusCode::NOT_FOUND,
            ApiError::TooManyBatches(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            _ => tracing::debug!(%status, error = %self, "request rejected"),
        }
        let mut response = HttpResponse::build(status);
        if let ApiError::TooManyBatches(full) = self {
            let seconds = full.retry_after.as_secs().to_string();
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        error_body(response, self)
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge { limit } => ApiError::TooLarge { limit },
            BodyError::Unreadable(cause) => {
                ApiError::BadRequest(format!("unreadable body: {cause}"))
            }
        }
    }
}
