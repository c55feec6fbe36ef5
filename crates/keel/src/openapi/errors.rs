//! The errors in the document: every response carrying a problem is
//! `application/problem+json`, the answers every operation shares by its shape and policy
//! are added to it, and the `Problem` schema lists the registry of problem types.

use platform::http::{Policy, ProblemType, Routes, problems};
use utoipa::openapi::{
    Content, OpenApi, RefOr, ResponseBuilder,
    path::{Operation, ParameterIn},
    schema::{ObjectBuilder, Schema, Type},
    security::SecurityRequirement,
};

const PROBLEM_JSON: &str = "application/problem+json";
const PROBLEM_REF: &str = "#/components/schemas/Problem";

/// Every problem type Keel answers with, each module's in turn.
pub(crate) fn problem_types() -> impl Iterator<Item = &'static ProblemType> {
    [
        problems::PROBLEMS,
        accounts::PROBLEMS,
        catalog::PROBLEMS,
        orders::PROBLEMS,
        crate::health::PROBLEMS,
        crate::features::PROBLEMS,
    ]
    .into_iter()
    .flatten()
}

pub(super) fn complete<S: Clone + Send + Sync + 'static>(doc: &mut OpenApi, routes: &Routes<S>) {
    for (method, path, policy) in routes.policies() {
        if let Some(operation) = super::operation(doc, method, path) {
            for (status, kinds) in shared_answers(operation, policy) {
                // What the handler says of a status stands; the shared answer fills a gap.
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| RefOr::T(problem_response(&kinds)));
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        for operation in super::operations(item) {
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    as_problem_json(response);
                }
            }
        }
    }
    describe_problem_types(doc);
}

/// What an operation may answer besides what its handler declares: the edge's problems for
/// its body, parameters, authentication, quota and feature switch, and the failures any
/// request can meet.
fn shared_answers(operation: &Operation, policy: Policy) -> Vec<(u16, Vec<ProblemType>)> {
    let mut answers = vec![
        (500, vec![problems::INTERNAL]),
        (503, {
            let mut kinds = vec![problems::TIMEOUT, problems::UNAVAILABLE];
            kinds.extend(policy.feature.map(|_| crate::features::FEATURE_OFF));
            kinds
        }),
    ];
    if policy.rate.is_some() {
        answers.push((429, vec![problems::RATE_LIMITED]));
    }
    let required =
        |requirement: &SecurityRequirement| *requirement != SecurityRequirement::default();
    if operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.iter().all(required) && !requirements.is_empty())
    {
        answers.push((401, vec![problems::UNAUTHENTICATED]));
    }
    let mut bad_request = Vec::new();
    for parameter in operation.parameters.iter().flatten() {
        let kind = match parameter.parameter_in {
            ParameterIn::Query => problems::INVALID_QUERY,
            ParameterIn::Path => problems::INVALID_PATH,
            _ if parameter.name.eq_ignore_ascii_case("idempotency-key") => {
                problems::INVALID_IDEMPOTENCY_KEY
            }
            _ => problems::INVALID_HEADER,
        };
        if !bad_request.contains(&kind) {
            bad_request.push(kind);
        }
    }
    if operation.request_body.is_some() {
        bad_request.extend([problems::MALFORMED_JSON, problems::UNREADABLE_BODY]);
        answers.push((413, vec![problems::BODY_TOO_LARGE]));
        answers.push((415, vec![problems::UNSUPPORTED_MEDIA_TYPE]));
        answers.push((422, vec![problems::INVALID_REQUEST]));
    }
    if !bad_request.is_empty() {
        answers.push((400, bad_request));
    }
    answers
}

fn problem_response(kinds: &[ProblemType]) -> utoipa::openapi::Response {
    let names: Vec<String> = kinds
        .iter()
        .map(|kind| format!("`{}` ({})", kind.uri, kind.title))
        .collect();
    ResponseBuilder::new()
        .description(names.join("; "))
        .content(
            PROBLEM_JSON,
            Content::new(Some(RefOr::<Schema>::Ref(utoipa::openapi::Ref::new(
                PROBLEM_REF,
            )))),
        )
        .build()
}

/// A response whose body is a `Problem` is sent as `application/problem+json`.
fn as_problem_json(response: &mut utoipa::openapi::Response) {
    let content = &mut response.content;
    let is_problem = |content: &Content| matches!(&content.schema, Some(RefOr::Ref(reference)) if reference.ref_location == PROBLEM_REF);
    if let Some(json) = content.get("application/json") {
        if is_problem(json) {
            if let Some(json) = content.shift_remove("application/json") {
                content.insert(PROBLEM_JSON.to_owned(), json);
            }
        }
    }
}

/// The `Problem` schema's `type` takes the registry's URIs only, and its description lists
/// each with its status, title and meaning.
fn describe_problem_types(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(problem))) = components.schemas.get_mut("Problem") else {
        return;
    };
    let mut kinds: Vec<&ProblemType> = problem_types().collect();
    kinds.sort_by_key(|kind| (kind.status, kind.uri));
    let table: Vec<String> = kinds
        .iter()
        .map(|kind| {
            format!(
                "- `{}` — {} {}: {}",
                kind.uri,
                kind.status.as_u16(),
                kind.title,
                kind.meaning
            )
        })
        .collect();
    let kind = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "The kind of problem; each has one status and title:\n\n{}",
            table.join("\n")
        )))
        .enum_values(Some(kinds.iter().map(|kind| kind.uri)))
        .build();
    problem.properties.insert("type".to_owned(), kind.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_types_are_registered_once() {
        let mut uris: Vec<&str> = problem_types().map(|kind| kind.uri).collect();
        let count = uris.len();
        uris.sort_unstable();
        uris.dedup();
        assert_eq!(uris.len(), count, "a problem type is registered twice");
        for kind in problem_types() {
            assert!(
                kind.status.is_client_error() || kind.status.is_server_error(),
                "{kind:?}"
            );
            assert!(!kind.meaning.is_empty(), "{kind:?}");
        }
    }

    /// Each problem type is explained in the API guide, with its status and title, so a
    /// client's author finds it where they read about errors.
    #[test]
    fn the_api_guide_lists_every_problem_type() {
        let guide = include_str!("../../../../docs/errors.md");
        for kind in problem_types() {
            let line = format!(
                "| `{}` | {} | {} |",
                kind.uri.trim_start_matches("urn:keel:problem:"),
                kind.status.as_u16(),
                kind.title
            );
            assert!(
                guide.contains(&line),
                "docs/errors.md lacks the line {line}"
            );
        }
    }
}
