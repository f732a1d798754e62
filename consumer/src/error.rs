//! Errors a client can meet, each mapped to a precise status and a JSON body
//! `{"error": "what went wrong and what to do"}`.

use crate::broker::BrokerError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use taskhooks_shared::SigningError;
use taskhooks_shared::web::BodyError;
use taskhooks_shared::web::error::{ErrorAnswer, LogAs, answer};

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("the body is larger than {limit} bytes; a task webhook is a small JSON object")]
    TooLarge { limit: usize },
    #[error(
        "the body did not arrive within {0:?}; send the whole request at once (a task is a few hundred bytes)"
    )]
    BodyTimeout(std::time::Duration),
    #[error("the request body could not be read: {0}")]
    UnreadableBody(String),
    #[error("the content type must be application/json (or another …+json type), got {0:?}")]
    NotJson(String),
    #[error("{0}")]
    Signature(#[from] SigningError),
    #[error(
        "the body is not a task ({0}); expected {{\"batchid\": string, \"id\": integer, \"owner\": string, \"priority\": \"Low\"|\"Moderate\"|\"Major\"|\"Critical\"}}"
    )]
    InvalidTask(String),
    /// A field of the task is longer than its cap (the message names both).
    #[error("{0}; shorten it (the limits keep every dashboard's snapshot small)")]
    FieldTooLong(String),
    /// The event could not be published; the sender should retry.
    #[error("the event could not be published right now ({0}); retry later")]
    Unavailable(#[from] BrokerError),
    /// The totals could not be read; the client should retry.
    #[error("the totals could not be read right now ({0}); retry later")]
    ReadUnavailable(BrokerError),
    /// `/ws` was requested without a valid WebSocket upgrade.
    #[error("this endpoint takes a WebSocket connection (ws://…/ws): {0}")]
    NotWebSocket(String),
    /// As many dashboard sockets are open as `--max-websockets` allows.
    #[error(
        "this consumer already serves {limit} dashboards (its --max-websockets); retry later or open another replica's dashboard"
    )]
    TooManyWebSockets { limit: usize },
    /// `/api/faults` without `--fault-injection`.
    #[error(
        "fault injection is off; start the consumer with --fault-injection (FAULT_INJECTION=true) to use /api/faults"
    )]
    FaultInjectionOff,
    /// A `PUT /api/faults` body that is not valid settings (the message names the field).
    #[error("{0}")]
    BadFaults(String),
    /// The fault settings could not be read or changed; the client should retry.
    #[error("the fault settings could not be read or changed right now ({0}); retry later")]
    FaultsUnavailable(BrokerError),
    /// A verified webhook refused on purpose (`fail_next` or `fail_percent`).
    #[error(
        "refused on purpose by fault injection (see /api/faults); the webhook was not counted, retry it"
    )]
    FaultInjected(u16),
    /// A bug or an unexpected failure on our side; the cause is logged.
    #[error("internal error; see the consumer's log")]
    Internal(#[source] anyhow::Error),
}

/// How long a sender should wait before retrying after a 503, in seconds.
const RETRY_AFTER_SECS: u64 = 1;

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnreadableBody(_)
            | ApiError::InvalidTask(_)
            | ApiError::FieldTooLong(_)
            | ApiError::NotWebSocket(_)
            | ApiError::BadFaults(_) => StatusCode::BAD_REQUEST,
            ApiError::FaultInjectionOff => StatusCode::NOT_FOUND,
            ApiError::FaultInjected(status) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Signature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Unavailable(_)
            | ApiError::ReadUnavailable(_)
            | ApiError::FaultsUnavailable(_)
            | ApiError::TooManyWebSockets { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        answer(self)
    }
}

impl ErrorAnswer for ApiError {
    fn log_as(&self) -> LogAs<'_> {
        match self {
            ApiError::Internal(cause) => LogAs::Internal(cause),
            ApiError::Unavailable(cause) => LogAs::Unavailable {
                message: "webhook refused with 503",
                cause,
            },
            ApiError::ReadUnavailable(cause) | ApiError::FaultsUnavailable(cause) => {
                LogAs::Unavailable {
                    message: "read refused with 503",
                    cause,
                }
            }
            _ => LogAs::Rejected,
        }
    }

    /// 503 and 429 say when to retry (a refusal injected with 429 or 503 too, as a
    /// real receiver's would).
    fn retry_after(&self) -> Option<u64> {
        matches!(
            self.status_code(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        )
        .then_some(RETRY_AFTER_SECS)
    }
}

impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge { limit } => ApiError::TooLarge { limit },
            BodyError::Unreadable(cause) => ApiError::UnreadableBody(cause),
        }
    }
}
