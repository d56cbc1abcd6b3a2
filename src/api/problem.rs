//! Errors as RFC 9457 problem details, in one place.
//!
//! Every handler returns `Result<_, Problem>`; extractor rejections (bad
//! JSON, a body over the limit, a query that does not parse) are turned
//! into problems too, so a client only ever has to read one error shape.
//! Handlers take [`ApiJson`], [`ApiQuery`] and [`ApiPath`] instead of
//! axum's `Json`, `Query` and `Path`: the same extractors, whose rejection
//! is already a `Problem`, so no handler sees or converts a rejection.
//! The `code` is stable and meant for programs; `detail` is for people and
//! never carries internals: a database error is logged on the server and
//! answered with a plain "internal error".

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`urn:remedy:problem:<code>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong with this request, and what to do about it.
    pub detail: String,
    /// Stable machine-readable code (`not_found`, `unauthorized`...).
    pub code: String,
}

impl Problem {
    /// A problem with `status`, stable `code` and a `detail` for people.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            type_uri: format!("urn:remedy:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_string(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 500 `internal`, with the cause logged here and not sent.
    pub fn internal(err: &anyhow::Error) -> Problem {
        tracing::error!(error = format!("{err:#}"), "request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not answer; the cause is in its log",
        )
    }
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Problem {
        Problem::internal(&err)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"remedy\""),
            );
        }
        res
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Problem {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_request",
        };
        // The rejection's text says what was wrong ("missing field
        // `lines`", "length limit exceeded"); it names no internals.
        // Its status is kept: 415 without a JSON content type, 422 for
        // JSON of the wrong shape, 400 for JSON that does not parse.
        Problem::new(status, code, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Problem {
        Problem::bad_request(r.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Problem {
        Problem::bad_request(r.body_text())
    }
}

// The extractors below are axum's own, with the rejection mapped through
// the `From` impls above. Why newtypes and not `Result<Json<T>,
// JsonRejection>` in each handler: the conversion then lives here once,
// and a new handler cannot forget it (a bare `Json<T>` would answer a bad
// body with axum's plain-text 4xx, which the OpenAPI document does not
// describe). Why not axum's `#[derive(FromRequest)] #[from_request(via(..),
// rejection(Problem))]`: it needs the `macros` feature (one more
// proc-macro crate to build) to generate what fits in a dozen lines.

/// A JSON body (axum's [`Json`]) whose rejection is a [`Problem`]: 400,
/// 413, 415 or 422 as axum decides, with its explanation as `detail`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let Json(value) = Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}

/// The query string (axum's [`Query`]); a query that does not deserialize
/// into `T` is a 400 [`Problem`].
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Query(value) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(value))
    }
}

/// Path parameters (axum's [`Path`]); one that does not deserialize into
/// `T` (a string that is not UTF-8 once decoded) is a 400 [`Problem`].
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}
