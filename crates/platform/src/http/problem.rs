//! RFC 9457 `application/problem+json`: the one shape of every error Keel sends.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem_type::{ProblemType, edge};
use crate::{BoxError, ErrorChain, InfraError};

/// A problem detail. Its `source`, when set, is logged and never sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:keel:problem:insufficient-stock`: one of
    /// the registry's, each with one status and title.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The fields of the request that were wrong, each with what was wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    retry_after: Option<u32>,
    #[serde(skip)]
    #[schema(ignore)]
    source: Option<BoxError>,
}

/// One invalid field: `field` is its path in the request, e.g. `lines[0].quantity`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

impl Problem {
    /// A problem of a registered type.
    pub fn new(kind: ProblemType) -> Self {
        Self {
            kind: kind.uri,
            title: kind.title,
            status: kind.status.as_u16(),
            detail: None,
            errors: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A 422 naming the one field that was wrong.
    pub fn invalid_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let (field, detail) = (field.into(), detail.into());
        Self::new(edge::INVALID_REQUEST)
            .detail(format!("{field}: {detail}"))
            .field(field, detail)
    }

    pub fn field(mut self, field: impl Into<String>, detail: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            detail: detail.into(),
        });
        self
    }

    /// A 404 whose detail names what was not found, e.g. `product`.
    pub fn not_found(what: &str) -> Self {
        Self::new(edge::NOT_FOUND).detail(format!("no such {what}"))
    }

    pub fn unauthorized() -> Self {
        Self::new(edge::UNAUTHENTICATED)
        .detail("send a valid session token as `Authorization: Bearer <token>` or the `keel_session` cookie")
    }

    pub fn forbidden() -> Self {
        Self::new(edge::FORBIDDEN)
    }

    /// A 500 whose cause is logged, never shown.
    pub fn internal(source: impl Into<BoxError>) -> Self {
        let mut problem = Self::new(edge::INTERNAL);
        problem.source = Some(source.into());
        problem
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<InfraError> for Problem {
    fn from(e: InfraError) -> Self {
        match e {
            InfraError::Unavailable { dependency, .. } => {
                let mut problem = Self::new(edge::UNAVAILABLE)
                    .detail("a dependency is overloaded or unreachable; retry shortly")
                    .retry_after(1);
                tracing::warn!(dependency, error = ?e, "request shed");
                metrics::counter!("keel_http_shed_total", "reason" => dependency).increment(1);
                problem.source = Some(Box::new(e));
                problem
            }
            e @ InfraError::Unexpected(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Some(source) = &self.source {
            if status.is_server_error() {
                tracing::error!(error = %ErrorChain(source.as_ref()), "request failed");
            }
        }
        let mut response = (status, axum::Json(&self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
