//! Month-to-date spend per team from AWS Cost Explorer, and a month-end
//! estimate: GetCostAndUsage grouped by the team cost-allocation tag, then
//! GetCostForecast per team where the account serves it, else a linear
//! projection.
//!
//! The same code talks to AWS and, in tests, to moto's server: only
//! `endpoint` differs. Credentials come from the standard AWS chain
//! (environment, `profile`, shared config, SSO cache, container/instance
//! role). The HTTPS client is built here on rustls with ring, so the broker
//! links one crypto library (the SDK's default would add aws-lc-sys).
//!
//! Every call is bounded by the configured deadline (default 5s) and makes
//! at most two attempts: a budget check must never hold a plan up. Errors are
//! rendered from the SDK's error context, which never contains credentials.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_costexplorer::Client;
use aws_sdk_costexplorer::error::DisplayErrorContext;
use aws_sdk_costexplorer::types::{
    DateInterval, Expression, Granularity, GroupDefinition, GroupDefinitionType, Metric, TagValues,
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::budget::{self, EstimateSource, TeamSpend};
use crate::config::CostExplorerConfig;
use crate::dates::format_date;

/// Month-to-date spend of every team Cost Explorer knows, plus month-end
/// estimates for the teams asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Actuals {
    /// The unit Cost Explorer reported (USD).
    pub unit: String,
    /// `[start, end)` of the month-to-date query, `YYYY-MM-DD`.
    pub period: (String, String),
    pub teams: BTreeMap<String, TeamSpend>,
}

/// An SDK error on one line, at most 240 characters (they can quote a whole
/// response body).
fn short(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(240) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

fn forecast_metric(metric: &str) -> Metric {
    match metric {
        "BlendedCost" => Metric::BlendedCost,
        "AmortizedCost" => Metric::AmortizedCost,
        "NetUnblendedCost" => Metric::NetUnblendedCost,
        "NetAmortizedCost" => Metric::NetAmortizedCost,
        _ => Metric::UnblendedCost,
    }
}

/// Asks Cost Explorer for `teams`' spend in `today`'s month. `Err` is a
/// one-line reason for humans ("actuals unavailable: …").
pub fn lookup(
    config: &CostExplorerConfig,
    teams: &[String],
    today: time::Date,
) -> Result<Actuals, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    let deadline = config.timeout;
    runtime.block_on(async {
        let started = Instant::now();
        let client = client(config).await;
        let (unit, period, mtd) =
            tokio::time::timeout(deadline, month_to_date(&client, config, today))
                .await
                .map_err(|_| format!("Cost Explorer did not answer within {deadline:?}"))??;
        let mut out = Actuals {
            unit,
            period,
            teams: BTreeMap::new(),
        };
        for team in teams {
            let actual_mtd = mtd.get(team).copied().unwrap_or(0.0);
            let remaining = deadline.saturating_sub(started.elapsed());
            let spend = estimate(&client, config, team, actual_mtd, today, remaining).await;
            out.teams.insert(team.clone(), spend);
        }
        Ok(out)
    })
}

async fn client(config: &CostExplorerConfig) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.timeout.min(Duration::from_secs(2)))
        .operation_attempt_timeout(config.timeout)
        .operation_timeout(config.timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(config.region.clone()))
        .timeout_config(timeouts)
        .retry_config(RetryConfig::standard().with_max_attempts(2));
    if let Some(profile) = &config.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    Client::new(&loader.load().await)
}

/// GetCostAndUsage for the month so far, grouped by the team tag, all pages.
async fn month_to_date(
    client: &Client,
    config: &CostExplorerConfig,
    today: time::Date,
) -> Result<(String, (String, String), BTreeMap<String, f64>), String> {
    let (start, _) = budget::month_bounds(today);
    // End is exclusive; tomorrow includes today's (partial) spend.
    let end = today.next_day().unwrap_or(today);
    let period = (format_date(start), format_date(end));
    let interval = DateInterval::builder()
        .start(&period.0)
        .end(&period.1)
        .build()
        .map_err(|error| error.to_string())?;
    let group = GroupDefinition::builder()
        .r#type(GroupDefinitionType::Tag)
        .key(&config.team_tag)
        .build();
    // Groups of a TAG come back as "<key>$<value>"; "<key>$" is untagged.
    let prefix = format!("{}$", config.team_tag);
    let mut by_team = BTreeMap::new();
    let mut unit = String::from("USD");
    let mut token: Option<String> = None;
    loop {
        let out = client
            .get_cost_and_usage()
            .time_period(interval.clone())
            .granularity(Granularity::Monthly)
            .metrics(&config.metric)
            .group_by(group.clone())
            .set_next_page_token(token.take())
            .send()
            .await
            .map_err(|error| {
                format!(
                    "GetCostAndUsage failed: {}",
                    short(&DisplayErrorContext(&error).to_string())
                )
            })?;
        for result in out.results_by_time() {
            for group in result.groups() {
                let Some(key) = group.keys().first() else {
                    continue;
                };
                let team = key.strip_prefix(&prefix).unwrap_or(key);
                if team.is_empty() {
                    continue;
                }
                let Some(value) = group.metrics().and_then(|m| m.get(&config.metric)) else {
                    continue;
                };
                let amount: f64 = value
                    .amount()
                    .unwrap_or("0")
                    .parse()
                    .map_err(|_| format!("GetCostAndUsage: {team}: amount is not a number"))?;
                if let Some(u) = value.unit() {
                    unit = u.to_owned();
                }
                *by_team.entry(team.to_owned()).or_insert(0.0) += amount;
            }
        }
        match out.next_page_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => break,
        }
    }
    Ok((unit, period, by_team))
}

/// Month-end estimate for one team: month-to-date plus GetCostForecast for
/// the rest of the month, else the linear projection (with the reason).
async fn estimate(
    client: &Client,
    config: &CostExplorerConfig,
    team: &str,
    actual_mtd: f64,
    today: time::Date,
    remaining: Duration,
) -> TeamSpend {
    let (_, next_month) = budget::month_bounds(today);
    let tomorrow = today.next_day().unwrap_or(next_month);
    if tomorrow >= next_month {
        return TeamSpend {
            actual_mtd,
            month_end: actual_mtd,
            source: EstimateSource::Actual,
            note: None,
        };
    }
    let projected = |note: String| TeamSpend {
        actual_mtd,
        month_end: budget::projection(actual_mtd, today),
        source: EstimateSource::Projection,
        note: Some(note),
    };
    if !config.forecast {
        return projected("forecast disabled in the configuration".into());
    }
    if remaining.is_zero() {
        return projected("no time left for GetCostForecast".into());
    }
    let interval = match DateInterval::builder()
        .start(format_date(tomorrow))
        .end(format_date(next_month))
        .build()
    {
        Ok(interval) => interval,
        Err(error) => return projected(error.to_string()),
    };
    let filter = Expression::builder()
        .tags(
            TagValues::builder()
                .key(&config.team_tag)
                .values(team)
                .build(),
        )
        .build();
    let call = client
        .get_cost_forecast()
        .time_period(interval)
        .metric(forecast_metric(&config.metric))
        .granularity(Granularity::Monthly)
        .filter(filter)
        .send();
    match tokio::time::timeout(remaining, call).await {
        Err(_) => projected(format!(
            "GetCostForecast did not answer within {remaining:?}"
        )),
        Ok(Err(error)) => projected(format!(
            "GetCostForecast unavailable: {}",
            short(&DisplayErrorContext(&error).to_string())
        )),
        Ok(Ok(out)) => match out
            .total()
            .and_then(|t| t.amount())
            .and_then(|a| a.parse::<f64>().ok())
        {
            Some(rest) => TeamSpend {
                actual_mtd,
                month_end: actual_mtd + rest,
                source: EstimateSource::Forecast,
                note: None,
            },
            None => projected("GetCostForecast returned no total".into()),
        },
    }
}
