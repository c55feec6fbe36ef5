//! The OpenAPI 3.1 document, generated from the handlers and types, served at `/openapi.json`.

use platform::http::{Policy, Routes, json_body};
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
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(identity::COOKIE))),
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

pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    // Rendered once: the document never changes while the process runs.
    let json = bytes::Bytes::from(document().to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "OpenAPI document did not serialize");
        "{}".to_owned()
    }));
    Routes::new().get(
        "/openapi.json",
        move || async move { json_body(json.clone()) },
        Policy::READ,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from the routes the application serves: a route added without its documentation
    /// fails here.
    #[test]
    fn every_route_is_documented() {
        let doc = document();
        let routes = crate::app::routes::<crate::app::AppState>();
        let mut checked = 0;
        for (method, path, _) in routes.policies() {
            if ["/livez", "/readyz", "/metrics", "/openapi.json"].contains(&path) {
                continue;
            }
            let item = doc.paths.paths.get(path);
            let documented = item.is_some_and(|item| match method.as_str() {
                "GET" => item.get.is_some(),
                "POST" => item.post.is_some(),
                "PUT" => item.put.is_some(),
                "PATCH" => item.patch.is_some(),
                "DELETE" => item.delete.is_some(),
                _ => false,
            });
            assert!(documented, "{method} {path} is not in the document");
            checked += 1;
        }
        assert!(checked >= 17, "only {checked} routes checked");
        let json = doc.to_json().unwrap();
        assert!(json.contains("\"openapi\":\"3.1"));
    }
}
