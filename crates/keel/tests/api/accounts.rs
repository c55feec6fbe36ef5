//! Registration, login, sessions and the current user.

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    helpers::{body, create_database, field, problem, spawn_app, spawn_app_with, test_config},
    redis_server::RedisServer,
};

#[tokio::test]
async fn register_login_me_logout() {
    let app = spawn_app().await;
    let email = app.register().await;
    let token = app.login(&email).await;

    let me = body(app.get("/accounts/me", Some(&token)).await).await;
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "customer");
    assert!(me.get("password_hash").is_none());

    let response = app
        .client
        .delete(app.url("/sessions/current"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    problem(
        app.get("/accounts/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn every_login_gets_a_new_session() {
    let app = spawn_app().await;
    let email = app.register().await;
    let first = app.login(&email).await;
    let second = app.login(&email).await;
    assert_ne!(first, second);
    assert_eq!(
        app.get("/accounts/me", Some(&first)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/accounts/me", Some(&second)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_session_cookie_is_hardened_and_works() {
    let app = spawn_app().await;
    let email = app.register().await;
    let response = app
        .post(
            "/sessions",
            None,
            &json!({ "email": email, "password": "correct horse battery" }),
        )
        .await;
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "keel_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
    ] {
        assert!(
            cookie.contains(attribute),
            "cookie lacks {attribute}: {cookie}"
        );
    }
    let pair = cookie.split(';').next().unwrap();
    let me = app
        .client
        .get(app.url("/accounts/me"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_email_has_one_account() {
    let app = spawn_app().await;
    let email = app.register().await;
    let response = app
        .post(
            "/accounts",
            None,
            &json!({ "email": email.to_uppercase(), "name": "Again", "password": "another password" }),
        )
        .await;
    let problem = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(field(&problem), "email");
}

#[tokio::test]
async fn a_client_cannot_choose_its_role() {
    let app = spawn_app().await;
    let response = app
        .post(
            "/accounts",
            None,
            &json!({ "email": "mallory@example.com", "name": "Mallory",
                      "password": "correct horse battery", "role": "admin" }),
        )
        .await;
    let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(field(&problem), "role");
    assert_eq!(app.count("SELECT count(*) FROM accounts.users").await, 0);
}

#[tokio::test]
async fn registration_fields_are_validated_by_name() {
    let app = spawn_app().await;
    for (body, bad_field) in [
        (
            json!({ "email": "nope", "name": "A", "password": "correct horse" }),
            "email",
        ),
        (
            json!({ "email": "a@example.com", "name": "", "password": "correct horse" }),
            "name",
        ),
        (
            json!({ "email": "a@example.com", "name": "A", "password": "short" }),
            "password",
        ),
        (json!({ "email": "a@example.com", "name": "A" }), "password"),
        (
            json!({ "email": 7, "name": "A", "password": "correct horse" }),
            "email",
        ),
    ] {
        let response = app.post("/accounts", None, &body).await;
        let problem = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(field(&problem), bad_field, "{body}");
    }
}

#[tokio::test]
async fn wrong_credentials_are_rejected_alike() {
    let app = spawn_app().await;
    let email = app.register().await;
    let wrong_password = app
        .post(
            "/sessions",
            None,
            &json!({ "email": email, "password": "wrong password" }),
        )
        .await;
    let unknown_email = app
        .post(
            "/sessions",
            None,
            &json!({ "email": "ghost@example.com", "password": "wrong password" }),
        )
        .await;
    let a = problem(wrong_password, StatusCode::UNAUTHORIZED).await;
    let b = problem(unknown_email, StatusCode::UNAUTHORIZED).await;
    assert_eq!(a, b, "the answer must not reveal which accounts exist");
}

#[tokio::test]
async fn bad_tokens_are_401_problems() {
    let app = spawn_app().await;
    problem(
        app.get("/accounts/me", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    problem(
        app.get("/accounts/me", Some("not-a-token")).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let forged = "A".repeat(43);
    problem(
        app.get("/accounts/me", Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

/// Session lookups (`GETEX`) the Redis at `url` has served since its last `CONFIG RESETSTAT`.
async fn session_lookups(url: &str) -> u64 {
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_getex:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// A signed-in read asks for its user and for its session's newest write: one lookup
/// serves both, whether the rate limiter resolved the session first or the handler does.
#[tokio::test]
async fn a_signed_in_read_looks_its_session_up_once() {
    let redis = RedisServer::start().await;
    for rate_limit_off in [true, false] {
        let mut config = test_config(create_database().await);
        config.redis.url = redis.url();
        config.rate_limits.rate_limit_off = rate_limit_off;
        let app = spawn_app_with(config).await;
        let token = app.login(&app.register().await).await;
        session_lookups(&redis.url()).await;
        for path in ["/orders", "/reports/my-stats"] {
            assert_eq!(app.get(path, Some(&token)).await.status(), StatusCode::OK);
            assert_eq!(
                session_lookups(&redis.url()).await,
                1,
                "{path}, rate limits off: {rate_limit_off}"
            );
        }
    }
}
