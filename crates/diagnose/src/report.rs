//! The diagnosis as a reader gets it: ranked findings with their evidence and remedy, then
//! the whole breakdown; as text, or as JSON with every number behind it.

use std::fmt::{self, Write as _};

use serde::Serialize;

use super::{
    attribution::{self, Breakdown, Finding},
    evidence::Evidence,
};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instances: usize,
    pub breakdown: Breakdown,
    pub findings: Vec<Finding>,
    pub evidence: Evidence,
}

impl Report {
    pub fn new(instances: usize, evidence: Evidence) -> Self {
        Self {
            instances,
            breakdown: attribution::breakdown(&evidence),
            findings: attribution::attribute(&evidence),
            evidence,
        }
    }

    /// The finding that explains the most.
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

fn pct(part: f64, total: f64) -> String {
    if total > 0.0 {
        format!("{:.0}%", 100.0 * part / total)
    } else {
        "–".into()
    }
}

fn ms(secs: Option<f64>) -> String {
    secs.map_or_else(|| "–".into(), |s| format!("{:.1} ms", s * 1000.0))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.evidence;
        let rate = if e.window_secs > 0.0 {
            e.http.requests / e.window_secs
        } else {
            0.0
        };
        writeln!(
            f,
            "keel diagnose — {:.1} s window, {} instance(s): {:.0} requests ({rate:.0}/s), p99 {}, {:.0} server errors, {:.0} shed",
            e.window_secs,
            self.instances,
            e.http.requests,
            ms(e.http.p99_secs),
            e.http.server_errors,
            e.http.shed
        )?;
        if e.http.requests == 0.0 {
            writeln!(
                f,
                "\nNo requests in the window: run traffic while diagnosing."
            )?;
        }
        if !self.findings.is_empty() {
            writeln!(f, "\nWhere the time goes, heaviest first:")?;
        }
        for (n, finding) in self.findings.iter().enumerate() {
            writeln!(
                f,
                "\n{}. {} — {} ({}): {}",
                n + 1,
                pct(finding.share, 1.0),
                finding.layer.name(),
                finding.kind,
                finding.title
            )?;
            for line in &finding.evidence {
                writeln!(f, "     · {line}")?;
            }
            writeln!(f, "     → {}", finding.remedy)?;
        }
        let b = &self.breakdown;
        let mut line = String::new();
        let _ = write!(
            line,
            "\nRequest time {:.1} s: pool wait {}, third party {}, redis {}, database {} (lock waits {}, queued for its CPU {}), other processes' CPU {}, application {}",
            b.total,
            pct(b.pool_wait, b.total),
            pct(b.third_party, b.total),
            pct(b.redis, b.total),
            pct(b.database, b.total),
            pct(b.lock_waits, b.total),
            pct(b.database_cpu, b.total),
            pct(b.infrastructure, b.total),
            pct(b.application, b.total)
        );
        writeln!(f, "{line}")?;
        writeln!(
            f,
            "CPU: Keel {:.2} of {:.0} cores, PostgreSQL {:.2}, machine {:.2}, throttled {:.2} s",
            e.cpu.keel_cores,
            e.cpu.cores,
            e.cpu.database_cores,
            e.cpu.machine_cores,
            e.cpu.throttled_secs
        )?;
        if let Some(redis) = &e.redis {
            writeln!(
                f,
                "Redis: {:.0} commands, {:.3} s of server time",
                redis.commands, redis.time_secs
            )?;
        }
        if !e.database.statements_available {
            writeln!(
                f,
                "PostgreSQL: pg_stat_statements is not loaded; database time is sampled (scripts/setup.sh enables it)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::*;

    #[test]
    fn the_text_leads_with_the_first_finding() {
        let evidence = Evidence {
            window_secs: 10.0,
            http: Http {
                requests: 500.0,
                time_secs: 5.0,
                ..Http::default()
            },
            pool: PoolWait {
                acquires: 500.0,
                wait_secs: 4.0,
                p99_secs: Some(0.05),
            },
            ..Evidence::default()
        };
        let report = Report::new(1, evidence);
        let text = report.to_string();
        assert!(
            text.contains("1. 80% — pool wait (exhausted pool)"),
            "{text}"
        );
        assert!(text.contains("KEEL_DB_WRITE_POOL"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["findings"][0]["layer"], "pool_wait");
    }
}
