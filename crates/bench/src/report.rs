//! What `keel bench run` reports: the run, a sale's outcome, a search's trials; as JSON (the
//! types serialize) and as a terminal table.

use serde::Serialize;

use crate::{find_max::Trial, run::RunReport, scenarios::SaleOutcome};

/// The report of `keel bench run`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub run: RunReport,
    /// flash-sale: how the sale ended.
    pub sale: Option<SaleOutcome>,
    /// `--find-max`: every rate tried, and the highest that held.
    pub search: Option<Search>,
}

/// What `--find-max` tried and found.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub slo_p99_ms: f64,
    pub trials: Vec<RunReport>,
    pub max_rate: Option<f64>,
    /// The rate held at the highest the search may try (`--max-rate`): the true maximum is
    /// at least this.
    pub at_ceiling: bool,
}

/// The report as a terminal table.
pub fn table(report: &Report) -> String {
    let run = &report.run;
    let mut out = format!(
        "{} at {}/s for {:.0} s: {} arrivals, {:.0} requests answered/s\n\
         {:<22} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  statuses\n",
        run.scenario,
        run.rate,
        run.duration_s,
        run.arrivals,
        run.achieved_rps,
        "operation",
        "requests",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99.9 ms",
        "failed"
    );
    for (operation, s) in &run.operations {
        let statuses: Vec<String> = s
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        let why: Vec<String> = s
            .failures
            .iter()
            .map(|(why, n)| format!("{why} {n}"))
            .chain(
                (s.resent > 0).then(|| format!("GETs resent on a closed connection {}", s.resent)),
            )
            .collect();
        out += &format!(
            "{operation:<22} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9}  {}{}\n",
            s.requests,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            s.p999_ms,
            s.failed,
            statuses.join(", "),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            }
        );
    }
    out += &format!(
        "arrivals sent late by the generator: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        run.sent_late.p50_ms, run.sent_late.p99_ms, run.sent_late.max_ms
    );
    if let Some(search) = &report.search {
        for trial in &search.trials {
            let t = Trial::of(trial);
            out += &format!(
                "tried {:>8.1}/s: p99 {:>8.2} ms, {}\n",
                t.rate,
                t.p99_ms,
                if t.held(search.slo_p99_ms) {
                    "held"
                } else {
                    "failed"
                }
            );
        }
        match search.max_rate {
            Some(rate) => {
                out += &format!(
                    "max rate with p99 ≤ {} ms: {}{rate}/s{}\n",
                    search.slo_p99_ms,
                    if search.at_ceiling { "≥ " } else { "" },
                    if search.at_ceiling {
                        " (held at --max-rate, the highest tried)"
                    } else {
                        ""
                    }
                )
            }
            None => out += &format!("no rate held p99 ≤ {} ms\n", search.slo_p99_ms),
        }
    }
    if let Some(sale) = &report.sale {
        out += &format!(
            "sale: {} units, {} orders accepted, {} sold out, {} left, oversold {}\n",
            sale.units, sale.accepted, sale.sold_out, sale.stock_left, sale.oversold
        );
    }
    out
}
