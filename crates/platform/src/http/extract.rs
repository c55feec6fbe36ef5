//! Extractors whose rejections are problems that name the offending field.
//!
//! Request types parse their fields with checked newtypes (`#[serde(try_from = ...)]`), so a
//! value that deserializes is already valid; these extractors report where it did not.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::PathRejection},
    http::{StatusCode, header, request::Parts},
};
use bytes::Bytes;
use serde::{Deserialize, de::DeserializeOwned};

use super::{Problem, problems};

/// A JSON body. Malformed JSON is a 400, a well-formed body with a wrong, missing or unknown
/// field a 422 naming it, a body over the limit a 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(Problem::new(problems::UNSUPPORTED_MEDIA_TYPE)
                .detail("send the body with `Content-Type: application/json`"));
        }
        let body = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(problems::BODY_TOO_LARGE).detail(rejection.body_text())
            } else {
                Problem::new(problems::UNREADABLE_BODY).detail(rejection.body_text())
            }
        })?;
        parse_json(&body).map(Json)
    }
}

/// A `T` read from a JSON object only. serde's derived structs also take an array of their
/// fields in order (`[3, 1]` for `{"product_id": 3, "quantity": 1}`), which no schema of
/// Keel's allows: a body, and each object inside one, is an object.
#[derive(Debug, Clone, Copy)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Object<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// Parses `body` as a `T` (from an object), or says what and where it was wrong.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map(|Object(value)| value)
        .map_err(|e| {
            let inner = e.inner();
            if inner.is_data() {
                let message = without_position(inner);
                Problem::invalid_field(field_name(&e.path().to_string(), &message), message)
            } else {
                malformed(inner)
            }
        })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> Problem {
    Problem::new(problems::MALFORMED_JSON).detail(format!(
        "{} at line {} column {}",
        without_position(e),
        e.line(),
        e.column()
    ))
}

/// serde_json appends " at line L column C"; the field path says more to a client.
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(end) if e.line() > 0 => message[..end].to_owned(),
        _ => message,
    }
}

/// serde reports a missing or unknown field at its parent's path; name the field itself.
fn field_name(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        // serde_path_to_error has already stepped into an unknown field.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (parent, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_owned(),
        (path, None) => path.to_owned(),
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let message = e.inner().to_string();
                let field = field_name(&e.path().to_string(), &message);
                Problem::new(problems::INVALID_QUERY)
                    .detail(format!("{field}: {message}"))
                    .field(field, message)
            })
    }
}

/// Path parameters, deserialized by name; a bad one is a 400 naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        use axum::extract::path::ErrorKind;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } => key.clone(),
                    _ => "path".to_owned(),
                };
                let detail = e.body_text();
                Err(Problem::new(problems::INVALID_PATH)
                    .detail(format!("{field}: {detail}"))
                    .field(field, detail))
            }
            Err(e) => Err(Problem::internal(e)),
        }
    }
}

/// The `{id}` of a resource path, as the resource's id type.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct IdPath<Id> {
    pub id: Id,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        product_id: i64,
        quantity: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        lines: Vec<Line>,
    }

    fn field_of(body: &str) -> (u16, String) {
        let problem = parse_json::<Order>(body.as_bytes()).unwrap_err();
        let field = problem.errors.first().map(|e| e.field.clone());
        (problem.status, field.unwrap_or_default())
    }

    #[test]
    fn wrong_types_name_the_nested_field() {
        let body = r#"{"lines":[{"product_id":1,"quantity":"two"}]}"#;
        assert_eq!(field_of(body), (422, "lines[0].quantity".into()));
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(
            field_of(r#"{"lines":[{"product_id":1}]}"#),
            (422, "lines[0].quantity".into())
        );
        assert_eq!(field_of(r#"{"lines":[],"price":1}"#), (422, "price".into()));
    }

    #[test]
    fn a_body_is_an_object_never_an_array_of_its_fields() {
        // serde's derived structs would take `[[...]]` as `{"lines": [...]}`.
        assert_eq!(field_of(r#"[[]]"#), (422, "body".into()));
        assert_eq!(field_of(r#"[]"#), (422, "body".into()));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Lines {
            lines: Vec<Object<Line>>,
        }
        let nested = parse_json::<Lines>(br#"{"lines":[[1, 2]]}"#).unwrap_err();
        assert_eq!(nested.errors[0].field, "lines[0]");
        assert!(parse_json::<Lines>(br#"{"lines":[{"product_id":1,"quantity":2}]}"#).is_ok());
    }

    #[test]
    fn malformed_json_is_a_400() {
        assert_eq!(field_of(r#"{"lines":["#).0, 400);
        assert_eq!(field_of(r#"{"lines":[]} trailing"#).0, 400);
    }
}
