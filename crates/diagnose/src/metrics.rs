//! Keel's own account of the window, from the instances' `/metrics`: requests and their time
//! per route, pool waits, payment calls.

use super::{
    DiagnoseError,
    evidence::{Evidence, Http, NamedQuery, Payments, PoolWait, RedisCalls, Route},
    scrape::Scrape,
};

/// Every instance's scrape, summed.
pub(super) async fn scrape_all(
    http: &reqwest::Client,
    instances: &[String],
) -> Result<Scrape, DiagnoseError> {
    let mut all = Scrape::default();
    for instance in instances {
        let base = instance.trim_end_matches('/');
        let fetched = async {
            http.get(format!("{base}/metrics"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        }
        .await
        .map_err(|source| DiagnoseError::Scrape {
            instance: base.to_owned(),
            source,
        })?;
        all.extend(Scrape::parse(&fetched));
    }
    Ok(all)
}

/// The HTTP, pool and payment evidence of the window between two scrapes.
pub(super) fn evidence(before: &Scrape, after: &Scrape) -> Evidence {
    let window = before.delta(after);
    let mut routes: Vec<Route> = window
        .select("keel_http_request_duration_seconds_count", &[])
        .filter(|s| s.value > 0.0 && s.label("route") != "/metrics")
        .map(|s| {
            let labels = [("method", s.label("method")), ("route", s.label("route"))];
            Route {
                method: s.label("method").to_owned(),
                route: s.label("route").to_owned(),
                requests: s.value,
                time_secs: window.sum("keel_http_request_duration_seconds_sum", &labels),
                p99_secs: window.quantile("keel_http_request_duration_seconds", &labels, 0.99),
            }
        })
        .collect();
    routes.sort_by(|a, b| b.time_secs.total_cmp(&a.time_secs));
    let http = Http {
        requests: routes.iter().map(|r| r.requests).sum(),
        server_errors: window.sum("keel_http_requests_total", &[("status", "5xx")]),
        shed: window.sum("keel_http_shed_total", &[]),
        time_secs: routes.iter().map(|r| r.time_secs).sum(),
        p99_secs: window.quantile("keel_http_request_duration_seconds", &[], 0.99),
        routes,
    };
    let pool = PoolWait {
        acquires: window.sum("keel_db_pool_acquire_seconds_count", &[]),
        wait_secs: window.sum("keel_db_pool_acquire_seconds_sum", &[]),
        p99_secs: window.quantile("keel_db_pool_acquire_seconds", &[], 0.99),
    };
    let payments = Payments {
        calls: window.sum("keel_payments_call_seconds_count", &[]),
        time_secs: window.sum("keel_payments_call_seconds_sum", &[]),
        timeouts: window.sum(
            "keel_payments_call_seconds_count",
            &[("outcome", "timeout")],
        ),
        p99_secs: window.quantile("keel_payments_call_seconds", &[], 0.99),
        // A gauge: its value at the end, not its change.
        breaker_open: after.sum("keel_breaker_state", &[("dependency", "payments")]) >= 2.0,
    };
    let redis_calls = RedisCalls {
        calls: window.sum("keel_redis_seconds_count", &[]),
        time_secs: window.sum("keel_redis_seconds_sum", &[]),
        p99_secs: window.quantile("keel_redis_seconds", &[], 0.99),
        heaviest: window
            .select("keel_redis_seconds_sum", &[])
            .filter(|s| s.value > 0.0)
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .map(|s| s.label("operation").to_owned()),
    };
    let mut queries: Vec<NamedQuery> = window
        .select("keel_db_query_seconds_count", &[])
        .filter(|s| s.value > 0.0)
        .map(|s| NamedQuery {
            statement: s.label("statement").to_owned(),
            calls: s.value,
            time_secs: window.sum(
                "keel_db_query_seconds_sum",
                &[("statement", s.label("statement"))],
            ),
        })
        .collect();
    queries.sort_by(|a, b| b.time_secs.total_cmp(&a.time_secs));
    Evidence {
        http,
        pool,
        payments,
        redis_calls,
        queries,
        ..Evidence::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_pool_and_payments_from_two_scrapes() {
        let before = Scrape::parse(
            r#"keel_http_request_duration_seconds_count{method="POST",route="/orders"} 10
keel_http_request_duration_seconds_sum{method="POST",route="/orders"} 1
keel_db_pool_acquire_seconds_count{pool="write"} 40
keel_db_pool_acquire_seconds_sum{pool="write"} 0.5
keel_breaker_state{dependency="payments"} 0
"#,
        );
        let after = Scrape::parse(
            r#"keel_http_request_duration_seconds_count{method="POST",route="/orders"} 110
keel_http_request_duration_seconds_sum{method="POST",route="/orders"} 21
keel_http_request_duration_seconds_count{method="GET",route="/metrics"} 3
keel_http_request_duration_seconds_sum{method="GET",route="/metrics"} 0.1
keel_db_pool_acquire_seconds_count{pool="write"} 440
keel_db_pool_acquire_seconds_sum{pool="write"} 12.5
keel_payments_call_seconds_count{operation="charge",outcome="answered"} 100
keel_payments_call_seconds_sum{operation="charge",outcome="answered"} 5
keel_breaker_state{dependency="payments"} 2
"#,
        );
        let e = evidence(&before, &after);
        assert_eq!(
            e.http.requests, 100.0,
            "the scrapes themselves are left out"
        );
        assert_eq!(e.http.time_secs, 20.0);
        assert_eq!(e.http.routes[0].route, "/orders");
        assert_eq!(e.pool.acquires, 400.0);
        assert_eq!(e.pool.wait_secs, 12.0);
        assert_eq!(e.payments.calls, 100.0);
        assert!(e.payments.breaker_open);
    }
}
