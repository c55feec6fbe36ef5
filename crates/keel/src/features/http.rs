//! The switches' admin routes: list them, switch one.

use accounts::{CurrentUser, Sessions};
use axum::{
    Router,
    extract::{FromRef, State},
    routing::{get, put},
};
use platform::http::{Json, Path, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::{Feature, Features};

#[derive(Clone, Debug)]
struct Admin {
    features: Features,
    sessions: Sessions,
}

impl FromRef<Admin> for Sessions {
    fn from_ref(admin: &Admin) -> Sessions {
        admin.sessions.clone()
    }
}

pub(crate) fn router(features: Features, sessions: Sessions) -> Router {
    Router::new()
        .route("/admin/features", get(list))
        .route("/admin/features/{name}", put(switch))
        .with_state(Admin { features, sessions })
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
    State(admin): State<Admin>,
    user: CurrentUser,
) -> Result<axum::Json<Vec<FeatureState>>, Problem> {
    user.require_admin()?;
    Ok(axum::Json(
        Feature::ALL
            .into_iter()
            .map(|feature| state(&admin.features, feature))
            .collect(),
    ))
}

/// Switch a feature on or off on every instance (within about a second) (admin).
#[utoipa::path(put, path = "/admin/features/{name}", tag = "operations",
    params(("name" = String, Path)), request_body = Switch, security(("session" = [])),
    responses((status = 200, body = FeatureState), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn switch(
    State(admin): State<Admin>,
    user: CurrentUser,
    Path(name): Path<String>,
    Json(switch): Json<Switch>,
) -> Result<axum::Json<FeatureState>, Problem> {
    user.require_admin()?;
    let feature = Feature::named(&name).ok_or_else(|| {
        Problem::not_found("feature").field("name", "not a feature: reports or product-listing")
    })?;
    admin.features.switch(feature, switch.enabled).await?;
    Ok(axum::Json(state(&admin.features, feature)))
}

fn state(features: &Features, feature: Feature) -> FeatureState {
    FeatureState {
        name: feature.name(),
        enabled: features.is_on(feature),
    }
}
