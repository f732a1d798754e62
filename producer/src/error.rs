//! Errors a client of the web app can meet, each mapped to a precise status and a
//! JSON body `{"error": "what went wrong and what to do"}`.

use crate::record::Refusal;
use crate::store::memory::KEEP_FINISHED;
use crate::store::{CreateError, StoreError};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use taskhooks_shared::web::BodyError;
use taskhooks_shared::web::error::{ErrorAnswer, LogAs, answer};

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The request's body or headers are not acceptable; the text says why.
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the route's limit.
    #[error("the body is over {limit} bytes; send only the fields this route documents")]
    TooLarge { limit: usize },
    /// A state-changing request was not sent as JSON.
    #[error(
        "send this request as application/json (even with an empty body), got content type {0:?}; \
         with curl: -H 'content-type: application/json'"
    )]
    NotJson(String),
    #[error(
        "no batch {0:?}: it never existed here, or it finished long enough ago to be dropped \
         ({minutes} minutes in memory, --keep-finished with REDIS_URL); start a new one with \
         POST /producetasks",
        minutes = KEEP_FINISHED.as_secs() / 60
    )]
    UnknownBatch(String),
    /// A batch route's `{id}` that cannot be a batch of ours (not a UUID as
    /// `POST /producetasks` gives them).
    #[error(
        "{0:?} is not a batch id: batch ids are lowercase hyphenated UUIDs, as POST \
         /producetasks answers them in \"batchid\""
    )]
    NotABatchId(String),
    /// A task id outside the batch.
    #[error(
        "no task {id} in this batch: its tasks' ids are 0 to {last}, as its events and the \
         page show them",
        last = total.saturating_sub(1)
    )]
    UnknownTask { id: u64, total: u64 },
    /// Some of the tasks asked to be redelivered have not finished.
    #[error(
        "task(s) {} still queued, sending or retrying; nothing was redelivered: wait until they \
         end (the batch's events say when) and ask again",
        list(.0)
    )]
    InFlight(Vec<u64>),
    /// The store has no room for this batch; the text says when to come back.
    #[error("{0}")]
    NoRoom(CreateError),
    /// Every event stream this producer allows is open.
    #[error(
        "this producer already serves {limit} event streams (its --max-event-streams); close \
         another page or tab following a batch, or retry later"
    )]
    TooManyStreams { limit: usize },
    /// The server is shutting down and starts nothing new.
    #[error("the producer is shutting down and starts no new batches; try again once it is back")]
    ShuttingDown,
    /// The outbox in Redis could not be reached.
    #[error("the producer's outbox in Redis cannot be reached right now ({0}); try again shortly")]
    StoreUnavailable(#[from] StoreError),
    /// A bug or an unexpected failure on our side; the cause is logged.
    #[error("internal error; see the producer's log")]
    Internal(#[source] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownBatch(_) | ApiError::NotABatchId(_) | ApiError::UnknownTask { .. } => {
                StatusCode::NOT_FOUND
            }
            ApiError::InFlight(_) => StatusCode::CONFLICT,
            ApiError::NoRoom(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::ShuttingDown
            | ApiError::StoreUnavailable(_)
            | ApiError::TooManyStreams { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
            ApiError::StoreUnavailable(cause) => LogAs::Unavailable {
                message: "Redis unavailable",
                cause,
            },
            _ => LogAs::Rejected,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::NoRoom(CreateError::TooManyBatches { retry_after, .. }) => {
                Some(retry_after.as_secs())
            }
            // Unknown when room is made (it depends on the receiver): a pause
            // long enough that a retrying client does not hammer.
            ApiError::NoRoom(CreateError::OutboxFull { .. }) => Some(10),
            ApiError::StoreUnavailable(_) | ApiError::TooManyStreams { .. } => Some(1),
            _ => None,
        }
    }

    fn detail(&self) -> Option<(&'static str, serde_json::Value)> {
        match self {
            ApiError::InFlight(tasks) => Some(("in_flight", serde_json::json!(tasks))),
            _ => None,
        }
    }
}

impl From<CreateError> for ApiError {
    fn from(err: CreateError) -> Self {
        match err {
            CreateError::Store(err) => ApiError::StoreUnavailable(err),
            full => ApiError::NoRoom(full),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::BadList(why) => ApiError::BadRequest(why),
            Refusal::OutOfRange { id, total } => ApiError::UnknownTask { id, total },
            Refusal::InFlight(tasks) => ApiError::InFlight(tasks),
        }
    }
}

/// `3, 7, 9` for the messages.
fn list(ids: &[u64]) -> String {
    let words: Vec<String> = ids.iter().map(u64::to_string).collect();
    words.join(", ")
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
