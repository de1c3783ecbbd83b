//! The `platform-broker` command line. Exit codes: 0 no changes (or success),
//! 2 changes allowed / drift found, 3 denied, 4 needs approval, 1 error
//! (usage errors included).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "platform-broker",
    version = version(),
    about = "Governed terraform plan/apply: policy, cost, drift and a tamper-evident audit trail.",
    after_help = "Exit codes: 0 no changes or success; 2 changes allowed, or drift found; \
3 denied by policy or budget; 4 needs approval; 1 error (usage errors included).\n\
Environment: PLATFORM_BROKER_KEY (the broker key), PLATFORM_LOG (log filter for the \
broker's own diagnostics on stderr, e.g. `info` or `broker=debug`)."
)]
struct Cli {
    /// Terraform binary (default: `terraform` on PATH).
    #[arg(long, global = true, env = "PLATFORM_TERRAFORM")]
    terraform: Option<PathBuf>,
    /// Broker home (default: DIR/.platform).
    #[arg(long, global = true, env = "PLATFORM_BROKER_HOME")]
    home: Option<PathBuf>,
    /// Broker configuration (HCL): Cost Explorer, budgets, audit sinks.
    /// See docs/broker-config.md.
    #[arg(long, global = true, env = "PLATFORM_BROKER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Plan, evaluate policy and cost, and write a plan bundle.
    Plan(broker::cli::PlanArgs),
    /// Apply exactly the reviewed plan bundle, once.
    Apply(broker::cli::ApplyArgs),
    /// Record an approval of a run that needs one.
    Approve(broker::cli::ApproveArgs),
    /// List the runs (plan bundles) of a working directory.
    Runs(broker::cli::RunsArgs),
    /// Detect drift with `terraform plan -refresh-only`; never writes state.
    Drift(broker::cli::DriftArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(broker::cli::PolicyCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(broker::cli::AuditCommand),
    /// The provider network mirror.
    #[command(subcommand)]
    Mirror(broker::cli::MirrorCommand),
    /// The control plane: an HTTP API over a store (SQLite by default, or PostgreSQL).
    Serve(broker::cli::ServeArgs),
}

/// `VERSION (commit C)`: scripts/release records the git commit it built in
/// `PLATFORM_BUILD_COMMIT`; any other build says it has none.
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| match option_env!("PLATFORM_BUILD_COMMIT") {
        Some(commit) if !commit.is_empty() => {
            format!("{} (commit {commit})", env!("CARGO_PKG_VERSION"))
        }
        _ => format!(
            "{} (development build: no commit recorded)",
            env!("CARGO_PKG_VERSION")
        ),
    })
}

fn main() -> ExitCode {
    // The broker's own diagnostics (`tracing`), to stderr, when asked for.
    if let Ok(filter) = std::env::var("PLATFORM_LOG")
        && !filter.trim().is_empty()
    {
        match tracing_subscriber::EnvFilter::try_new(filter.trim()) {
            Ok(filter) => tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init(),
            Err(error) => {
                eprintln!("platform-broker: error: PLATFORM_LOG: {error}");
                return ExitCode::from(1);
            }
        }
    }
    // A usage error exits 1 ("error"), never clap's 2: 2 means "changes
    // allowed" to a pipeline, which would then run its apply job. Help and
    // version requests still exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 1 } else { 0 });
        }
    };
    let config = match &cli.config {
        Some(path) => match broker::config::BrokerConfig::load(path) {
            Ok(config) => config,
            Err(error) => {
                eprintln!("platform-broker: error: {error}");
                return ExitCode::from(1);
            }
        },
        None => broker::config::BrokerConfig::default(),
    };
    let global = broker::cli::Global {
        terraform: cli.terraform,
        home: cli.home,
        config,
    };
    let result = match cli.command {
        Command::Plan(args) => broker::cli::plan(&global, args),
        Command::Apply(args) => broker::cli::apply(&global, args),
        Command::Approve(args) => broker::cli::approve(&global, args),
        Command::Runs(args) => broker::cli::runs(&global, args),
        Command::Drift(args) => broker::cli::drift(&global, args),
        Command::Policy(command) => broker::cli::policy(&global, command),
        Command::Audit(command) => broker::cli::audit(&global, command),
        Command::Mirror(command) => broker::cli::mirror(command),
        Command::Serve(args) => broker::cli::serve(&global, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("platform-broker: error: {}", broker::render_error(&error));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    if sub.get_about().is_none() {
                        missing.push(format!("{path} {} (about)", sub.get_name()));
                    }
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "platform-broker", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
        let help = super::Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes: 0"), "{help}");
    }
}
