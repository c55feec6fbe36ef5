//! The OpenAPI 3.1 document, generated from the handlers and types, served at `/openapi.json`.

use axum::{Router, routing::get};
use platform::http::json_body;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Keel", description = "A horizontally scalable commerce backend."),
    modifiers(&SessionAuth),
    components(schemas(platform::http::Problem, platform::http::FieldError))
)]
struct KeelApi;

struct SessionAuth;

impl Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the `token` of POST /sessions"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(accounts::COOKIE))),
        );
    }
}

/// The merged document of every module.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = KeelApi::openapi();
    doc.merge(accounts::ApiDoc::openapi());
    doc.merge(catalog::ApiDoc::openapi());
    doc.merge(orders::ApiDoc::openapi());
    doc.merge(reports::ApiDoc::openapi());
    doc.merge(crate::features::ApiDoc::openapi());
    doc
}

pub(crate) fn router() -> Router {
    // Rendered once: the document never changes while the process runs.
    let json = bytes::Bytes::from(document().to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "OpenAPI document did not serialize");
        "{}".to_owned()
    }));
    Router::new().route(
        "/openapi.json",
        get(move || async move { json_body(json.clone()) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = document();
        for path in [
            "/accounts",
            "/accounts/me",
            "/sessions",
            "/sessions/current",
            "/products",
            "/products/{id}",
            "/products/{id}/stock",
            "/orders",
            "/orders/{id}",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} is not in the spec"
            );
        }
        let json = doc.to_json().unwrap();
        assert!(json.contains("\"openapi\":\"3.1"));
    }
}
