//! Quotas and the rate limiter's settings.

use std::{net::IpAddr, str::FromStr, time::Duration};

use ipnet::IpNet;

use crate::config::parse_duration;

/// `limit` requests per `window`, written `10/60s` or `600/1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u32,
    pub window: Duration,
}

impl FromStr for Quota {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (limit, window) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a quota like 10/60s"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("`{limit}` is not a whole number of requests"))?;
        let window = parse_duration(window.trim()).map_err(|e| format!("`{window}`: {e}"))?;
        if limit == 0 || window.is_zero() {
            return Err("a quota needs at least one request and a non-zero window".into());
        }
        Ok(Self { limit, window })
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitConfig {
    /// Turn rate limiting off (for measuring what it costs). In the environment any of
    /// 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "KEEL_RATE_LIMIT_OFF", value_parser = clap::builder::BoolishValueParser::new())]
    pub rate_limit_off: bool,

    /// Logins and registrations, per client IP.
    #[arg(long, env = "KEEL_RATE_LOGIN", default_value = "10/60s")]
    pub rate_login: Quota,

    /// Other writes, per user (or per IP when anonymous).
    #[arg(long, env = "KEEL_RATE_WRITE", default_value = "120/60s")]
    pub rate_write: Quota,

    /// Reads, per user (or per IP when anonymous).
    #[arg(long, env = "KEEL_RATE_READ", default_value = "1200/60s")]
    pub rate_read: Quota,

    /// The most cells of a write or read quota one instance draws from Redis at once and
    /// spends locally (at most a tenth of the quota; logins are always decided one by one).
    /// 1 asks Redis for every request: exact across instances, one round trip each.
    #[arg(long, env = "KEEL_RATE_BATCH", default_value_t = 64)]
    pub rate_batch: u32,

    /// Proxies whose `X-Forwarded-For` is believed (comma-separated addresses or ranges:
    /// `10.0.0.7`, `10.0.0.0/8` for a cluster's pod network); from any other peer the header
    /// is ignored, so a client cannot choose its own address.
    #[arg(long, env = "KEEL_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,
}

/// An address (a range of one) or a range in CIDR notation.
pub fn parse_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is neither an address nor a range like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse() {
        assert_eq!(
            "10/60s".parse::<Quota>(),
            Ok(Quota {
                limit: 10,
                window: Duration::from_secs(60)
            })
        );
        assert_eq!(
            "600/1m".parse::<Quota>().unwrap().window,
            Duration::from_secs(60)
        );
        for bad in ["10", "0/1s", "10/0s", "x/1s", "10/1 fortnight"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }
}
