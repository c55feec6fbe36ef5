//! The switches' admin routes: list them, switch one.

use axum::extract::{FromRef, State};
use identity::{CurrentUser, Sessions};
use platform::http::{Feature, Json, Path, Policy, Problem, Routes};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::Features;

pub(crate) fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Features: FromRef<S>,
    Sessions: FromRef<S>,
{
    Routes::new()
        .get("/admin/features", list, Policy::READ)
        .put("/admin/features/{name}", switch, Policy::WRITE)
}

#[derive(Debug, OpenApi)]
#[openapi(paths(list, switch), components(schemas(FeatureState, Switch)))]
pub(crate) struct ApiDoc;

/// A feature and whether it is on.
#[derive(Debug, Serialize, ToSchema)]
struct FeatureState {
    /// `reports` or `product-listing`.
    name: &'static str,
    enabled: bool,
}

/// The state to switch a feature to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Switch {
    enabled: bool,
}

/// Every feature that can be switched off, and whether it is on (admin).
#[utoipa::path(get, path = "/admin/features", tag = "operations", security(("session" = [])),
    responses((status = 200, body = Vec<FeatureState>), (status = 403, body = Problem)))]
async fn list(
    State(features): State<Features>,
    user: CurrentUser,
) -> Result<axum::Json<Vec<FeatureState>>, Problem> {
    user.require_admin()?;
    Ok(axum::Json(
        features
            .all()
            .map(|feature| state(&features, feature))
            .collect(),
    ))
}

/// Switch a feature on or off on every instance (within about a second) (admin).
#[utoipa::path(put, path = "/admin/features/{name}", tag = "operations",
    params(("name" = String, Path)), request_body = Switch, security(("session" = [])),
    responses((status = 200, body = FeatureState), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn switch(
    State(features): State<Features>,
    user: CurrentUser,
    Path(name): Path<String>,
    Json(switch): Json<Switch>,
) -> Result<axum::Json<FeatureState>, Problem> {
    user.require_admin()?;
    let feature = features.named(&name).ok_or_else(|| {
        let names: Vec<&str> = features.all().map(|f| f.name).collect();
        Problem::not_found("feature")
            .field("name", format!("not a feature: {}", names.join(" or ")))
    })?;
    features.switch(feature, switch.enabled).await?;
    Ok(axum::Json(state(&features, feature)))
}

fn state(features: &Features, feature: &'static Feature) -> FeatureState {
    FeatureState {
        name: feature.name,
        enabled: features.is_on(feature),
    }
}
