//! The catalog routes: thin handlers over the service functions. Writes need an admin.

use axum::{
    extract::{FromRef, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use identity::{CurrentUser, ReadToken, Sessions};
use platform::http::{Feature, IdPath, Json, Path, Policy, Problem, Query, Routes, json_body};
use serde::Deserialize;
use utoipa::{OpenApi, ToSchema};

use crate::{
    Catalog, Error, NewProduct, Product, ProductChanges, ProductFilter, ProductId, ProductPage,
    StockLevel, query, stock, write,
};

/// Product listings and their filters (`GET /products`): uncached keyset queries an operator
/// can switch off under load. A product's own page stays.
pub(crate) static PRODUCT_LISTING: Feature = Feature {
    name: "product-listing",
};

/// The catalog routes. Writes need an admin.
pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Catalog: FromRef<S>,
    Sessions: FromRef<S>,
{
    Routes::new()
        .get(
            "/products",
            list,
            Policy::READ.switched_by(&PRODUCT_LISTING),
        )
        .post("/products", create, Policy::WRITE)
        .get("/products/{id}", show, Policy::READ)
        .patch("/products/{id}", update, Policy::WRITE)
        .put("/products/{id}/stock", set_stock, Policy::WRITE)
}

#[derive(Debug, OpenApi)]
#[openapi(
    paths(list, create, show, update, set_stock),
    components(schemas(Product, ProductPage, NewProduct, ProductChanges, StockChange))
)]
pub struct ApiDoc;

/// List products, filtered, in keyset pages.
#[utoipa::path(get, path = "/products", tag = "catalog", params(ProductFilter),
    responses((status = 200, body = ProductPage), (status = 400, body = Problem)))]
async fn list(
    State(catalog): State<Catalog>,
    ReadToken(token): ReadToken,
    Query(filter): Query<ProductFilter>,
) -> Result<axum::Json<ProductPage>, Error> {
    Ok(axum::Json(
        query::list_products(&catalog.db, token, &filter).await?,
    ))
}

/// One product with its stock.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = Product), (status = 404, body = Problem)))]
async fn show(
    State(catalog): State<Catalog>,
    ReadToken(token): ReadToken,
    Path(IdPath { id }): Path<IdPath<ProductId>>,
) -> Result<Response, Error> {
    let json = catalog.products.get_json(&catalog.db, token, id).await?;
    Ok(json_body(json))
}

/// Create a product (admin).
#[utoipa::path(post, path = "/products", tag = "catalog", request_body = NewProduct,
    security(("session" = [])),
    responses((status = 201, body = Product), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(catalog): State<Catalog>,
    user: CurrentUser,
    Json(new): Json<NewProduct>,
) -> Result<Response, Problem> {
    user.require_admin()?;
    let db = catalog.db.write().await?;
    let product = write::create_product(&db, &new).await?;
    let location = format!("/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(product),
    )
        .into_response())
}

/// Change a product's fields (admin).
#[utoipa::path(patch, path = "/products/{id}", tag = "catalog", params(("id" = i64, Path)),
    request_body = ProductChanges, security(("session" = [])),
    responses((status = 200, body = Product), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update(
    State(catalog): State<Catalog>,
    user: CurrentUser,
    Path(IdPath { id }): Path<IdPath<ProductId>>,
    Json(changes): Json<ProductChanges>,
) -> Result<axum::Json<Product>, Problem> {
    user.require_admin()?;
    let db = catalog.db.write().await?;
    let product = write::update_product(&db, id, &changes).await?;
    let written_at = catalog.db.written_at(&db).await;
    catalog.products.invalidate(written_at, [id]).await;
    Ok(axum::Json(product))
}

/// The new stock level of a product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StockChange {
    #[schema(schema_with = StockLevel::schema)]
    on_hand: StockLevel,
}

/// Set a product's units on hand (admin).
#[utoipa::path(put, path = "/products/{id}/stock", tag = "catalog", params(("id" = i64, Path)),
    request_body = StockChange, security(("session" = [])),
    responses((status = 200, body = Product), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_stock(
    State(catalog): State<Catalog>,
    user: CurrentUser,
    Path(IdPath { id }): Path<IdPath<ProductId>>,
    Json(change): Json<StockChange>,
) -> Result<axum::Json<Product>, Problem> {
    user.require_admin()?;
    let db = catalog.db.write().await?;
    let product = stock::set_stock(&db, id, change.on_hand).await?;
    let written_at = catalog.db.written_at(&db).await;
    catalog.products.invalidate(written_at, [id]).await;
    Ok(axum::Json(product))
}
