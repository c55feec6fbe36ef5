//! Rate limiting as middleware on each route: the quota its policy names, spent from the
//! user's budget when the request carries a valid session, else the client's IP. The login
//! quota is always spent from the IP's budget (credential stuffing).

use std::{
    convert::Infallible,
    fmt,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderMap, HeaderName},
    response::Response,
};
use identity::Sessions;
use platform::{
    http::{RateClass, Selective, call_next},
    ratelimit::{Policy, RateLimitConfig, RateLimiter, apply_headers, too_many_requests},
};
use tower::Service;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One `Arc`: the routes' stacks, and this with them, are cloned per request.
#[derive(Clone, Debug)]
pub(crate) struct Limits(Arc<LimitsParts>);

#[derive(Debug)]
struct LimitsParts {
    limiter: RateLimiter,
    sessions: Sessions,
    login: Policy,
    write: Policy,
    read: Policy,
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// Whose budget a request spends.
enum Subject {
    User(contract::UserId),
    Ip(IpAddr),
    Unknown,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Ip(ip) => write!(f, "ip:{ip}"),
            Self::Unknown => f.write_str("ip:unknown"),
        }
    }
}

impl Limits {
    pub(crate) fn new(limiter: RateLimiter, sessions: Sessions, config: &RateLimitConfig) -> Self {
        Self(Arc::new(LimitsParts {
            limiter,
            sessions,
            login: Policy::new(RateClass::Login.name(), config.rate_login),
            write: Policy::new(RateClass::Write.name(), config.rate_write)
                .batched(config.rate_batch),
            read: Policy::new(RateClass::Read.name(), config.rate_read).batched(config.rate_batch),
            trusted_proxies: config.trusted_proxies.clone(),
        }))
    }

    /// The middleware for a route whose requests spend `quota`.
    pub(crate) fn spending(&self, quota: RateClass) -> Limited {
        Limited {
            limits: self.clone(),
            quota,
        }
    }

    fn policy(&self, quota: RateClass) -> &Policy {
        match quota {
            RateClass::Login => &self.0.login,
            RateClass::Write => &self.0.write,
            RateClass::Read => &self.0.read,
        }
    }

    /// The client's address: the peer, or — only when the peer is a trusted proxy — the
    /// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
    fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        let trusted = |ip: &IpAddr| self.0.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !trusted(ip))
                .unwrap_or(peer),
        )
    }
}

/// One route's rate limit: every request spends `quota`.
#[derive(Clone, Debug)]
pub(crate) struct Limited {
    limits: Limits,
    quota: RateClass,
}

impl Selective for Limited {
    type Plan = ();

    fn plan(&self, _request: &Request) -> Option<()> {
        Some(())
    }

    async fn around<S>(self, (): (), mut request: Request, next: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let limits = &self.limits;
        let policy = limits.policy(self.quota);
        // A session must not pay for guessing credentials.
        let per_user = self.quota != RateClass::Login;
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = limits.client_ip(peer, request.headers());
        let user = if per_user {
            // A Redis failure here leaves the request anonymous; its handler reports the outage.
            identity::authenticate(&limits.0.sessions, request.headers())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        let subject = match (&user, ip) {
            (Some(user), _) => Subject::User(user.id),
            (None, Some(ip)) => Subject::Ip(ip),
            (None, None) => Subject::Unknown,
        };
        if let Some(user) = user {
            request.extensions_mut().insert(user);
        }
        let decision = limits.0.limiter.check(policy, subject).await;
        if !decision.allowed {
            return too_many_requests(policy, &decision);
        }
        let mut response = call_next(next, request).await;
        apply_headers(response.headers_mut(), policy, &decision);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn limits(trusted: &[&str]) -> Limits {
        let redis = platform::redis::Redis::connect(&platform::config::RedisConfig {
            sentinels: Vec::new(),
            master_name: "keel".into(),
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "unused:".into(),
            timeout: std::time::Duration::from_millis(10),
        })
        .unwrap();
        let sessions = Sessions::new(
            redis.clone(),
            &identity::SessionConfig {
                session_ttl: std::time::Duration::from_secs(1),
                session_outage_grace: std::time::Duration::from_secs(60),
            },
        );
        let config = RateLimitConfig {
            trusted_proxies: trusted
                .iter()
                .map(|ip| platform::ratelimit::parse_proxy(ip).unwrap())
                .collect(),
            ..platform::config::defaults().unwrap()
        };
        Limits::new(RateLimiter::new(redis), sessions, &config)
    }

    fn forwarded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static(value));
        headers
    }

    #[tokio::test]
    async fn forwarded_for_is_ignored_from_untrusted_peers() {
        let limits = limits(&[]);
        let peer = "203.0.113.9".parse().ok();
        assert_eq!(limits.client_ip(peer, &forwarded("1.2.3.4")), peer);
    }

    #[tokio::test]
    async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
        let limits = limits(&["10.0.0.1", "10.0.0.2"]);
        let peer = "10.0.0.1".parse().ok();
        // A client-supplied entry on the left cannot override what the proxies appended.
        let ip = limits.client_ip(peer, &forwarded("6.6.6.6, 198.51.100.7, 10.0.0.2"));
        assert_eq!(ip, "198.51.100.7".parse().ok());
        assert_eq!(limits.client_ip(peer, &HeaderMap::new()), peer);
    }

    #[tokio::test]
    async fn a_trusted_range_covers_every_proxy_in_it() {
        // A cluster's ingress pods come and go within the pod network's range.
        let limits = limits(&["10.0.0.0/8"]);
        let peer = "10.42.7.3".parse().ok();
        let ip = limits.client_ip(peer, &forwarded("198.51.100.7, 10.42.1.9"));
        assert_eq!(ip, "198.51.100.7".parse().ok());
        let outside = "11.0.0.1".parse().ok();
        assert_eq!(
            limits.client_ip(outside, &forwarded("198.51.100.7")),
            outside
        );
        assert!(platform::ratelimit::parse_proxy("10.0.0.0/33").is_err());
        assert!(platform::ratelimit::parse_proxy("proxy").is_err());
    }

    #[tokio::test]
    async fn each_quota_has_its_own_policy() {
        let limits = limits(&[]);
        for quota in [RateClass::Login, RateClass::Write, RateClass::Read] {
            assert_eq!(
                limits.spending(quota).limits.policy(quota).name(),
                quota.name()
            );
        }
    }
}
