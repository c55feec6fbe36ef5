//! The OpenAPI 3.1 document, generated from the handlers, their types and the routes'
//! policies, served at `/openapi.json`.

mod errors;

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

/// The document of the API that `routes` serves: each module's operations, the answers every
/// operation shares by its shape and policy (errors as `application/problem+json`, with the
/// registry of problem types).
pub(crate) fn document<S: Clone + Send + Sync + 'static>(
    routes: &Routes<S>,
) -> utoipa::openapi::OpenApi {
    let mut doc = KeelApi::openapi();
    doc.merge(accounts::ApiDoc::openapi());
    doc.merge(catalog::ApiDoc::openapi());
    doc.merge(orders::ApiDoc::openapi());
    doc.merge(reports::ApiDoc::openapi());
    doc.merge(crate::features::ApiDoc::openapi());
    errors::complete(&mut doc, routes);
    unique_operation_ids(&mut doc);
    doc
}

/// `/openapi.json`, describing `routes`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(routes: &Routes<S>) -> Routes<S> {
    // Rendered once: the document never changes while the process runs.
    let json = bytes::Bytes::from(document(routes).to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "OpenAPI document did not serialize");
        "{}".to_owned()
    }));
    Routes::new().get(
        "/openapi.json",
        move || async move { json_body(json.clone()) },
        Policy::READ,
    )
}

/// Handlers in different modules share names (`list`, `show`); an operation id must be
/// unique in the document, so each is prefixed with its tag.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for operation in operations(item) {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .cloned();
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut()) {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

/// The operations of a path item, whichever methods it has.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The operation `method path` of the document, if documented.
fn operation<'a>(
    doc: &'a mut utoipa::openapi::OpenApi,
    method: &axum::http::Method,
    path: &str,
) -> Option<&'a mut utoipa::openapi::path::Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method.as_str() {
        "GET" => item.get.as_mut(),
        "POST" => item.post.as_mut(),
        "PUT" => item.put.as_mut(),
        "PATCH" => item.patch.as_mut(),
        "DELETE" => item.delete.as_mut(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes that are not part of the API a client programs against: the probes and
    /// the metrics.
    const OPERATIONAL: [&str; 3] = ["/livez", "/readyz", "/metrics"];

    /// Read from the routes the application serves: a route added without its documentation
    /// fails here.
    #[test]
    fn every_route_is_documented() {
        let routes = crate::app::routes::<crate::app::AppState>();
        let mut doc = document(&routes);
        let mut checked = 0;
        for (method, path, _) in routes.policies() {
            if OPERATIONAL.contains(&path) {
                continue;
            }
            assert!(
                operation(&mut doc, method, path).is_some(),
                "{method} {path} is not in the document"
            );
            checked += 1;
        }
        assert!(checked >= 17, "only {checked} routes checked");
        let json = doc.to_json().unwrap();
        assert!(json.contains("\"openapi\":\"3.1"));
    }

    #[test]
    fn operation_ids_are_unique() {
        let routes = crate::app::routes::<crate::app::AppState>();
        let mut doc = document(&routes);
        let mut ids = Vec::new();
        for item in doc.paths.paths.values_mut() {
            ids.extend(operations(item).filter_map(|op| op.operation_id.clone()));
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{ids:?}");
    }
}
