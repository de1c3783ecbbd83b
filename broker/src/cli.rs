//! The command line: clap arguments, printing and exit codes. Every command
//! is a call into the `run` layer (the broker server is a second front end on
//! the same layer); errors become exit 1 in `main`.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use serde_json::json;

/// `format_version` of every `--json` output; the minor part grows with
/// additions, the major part with changes a reader must handle.
pub const JSON_FORMAT_VERSION: &str = "1.0";

use crate::config::BrokerConfig;
use crate::policy::{self, PolicyConfig};
use crate::report;
use crate::run::drift::{Ack, DirDrift};
use crate::run::{self, Context};

pub use crate::run::{EXIT_CHANGES, EXIT_DENIED, EXIT_ERROR, EXIT_NEEDS_APPROVAL, EXIT_OK};

/// The global options of every command.
pub struct Global {
    pub terraform: Option<PathBuf>,
    pub home: Option<PathBuf>,
    /// The broker configuration (`--config`); the default without one.
    pub config: BrokerConfig,
}

impl Global {
    fn context(&self) -> Context {
        Context {
            terraform: self.terraform.clone(),
            home: self.home.clone(),
            config: self.config.clone(),
            actor: run::actor_from_env(),
            state: None,
        }
    }
}

fn progress(line: &str) {
    eprintln!("  {line}");
}

fn warning(text: &str) {
    eprintln!("platform-broker: warning: {text}");
}

#[derive(clap::Args)]
pub struct Inputs {
    /// Policy configuration (HCL); default: none (no policy).
    #[arg(long, env = "PLATFORM_POLICY")]
    pub policy: Option<PathBuf>,
    /// Price book for non-platform resource types.
    #[arg(long, env = "PLATFORM_PRICEBOOK")]
    pub pricebook: Option<PathBuf>,
    /// Catalog directory (default: the catalog compiled into the broker).
    #[arg(long, env = "PLATFORM_CATALOG")]
    pub catalog: Option<PathBuf>,
}

impl Inputs {
    fn to_run(&self) -> run::Inputs {
        run::Inputs {
            policy: self.policy.clone(),
            pricebook: self.pricebook.clone(),
            catalog: self.catalog.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// Terraform working directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
    /// Environment name policies see (input.run.workspace.environment).
    #[arg(long, env = "PLATFORM_ENVIRONMENT", default_value = "default")]
    pub environment: String,
    /// Hours until the bundle expires.
    #[arg(long, default_value_t = 24)]
    pub expires_hours: u32,
    /// Plan the destruction of every resource (`terraform plan -destroy`).
    #[arg(long)]
    pub destroy: bool,
    /// A variable, passed to terraform (`-var NAME=VALUE`); the identity
    /// records its name and a keyed digest, never the value.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = VarParser)]
    pub vars: Vec<(String, String)>,
    /// A variable file, passed to terraform (`-var-file`); apply refuses if
    /// it changed since the plan.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Limit the plan to an address (`-target`).
    #[arg(long = "target", value_name = "ADDRESS")]
    pub targets: Vec<String>,
    /// Force replacement of an address (`-replace`).
    #[arg(long = "replace", value_name = "ADDRESS")]
    pub replace: Vec<String>,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as one Markdown PR comment.
    #[arg(long)]
    pub markdown: bool,
    /// Also write policy findings as SARIF 2.1.0 to this file.
    #[arg(long)]
    pub sarif: Option<PathBuf>,
    /// Also write policy findings as JUnit XML to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// A control-plane server (`platform-broker serve`): the server runs it.
    #[arg(long, env = "PLATFORM_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --server: the workspace on the server.
    #[arg(long, env = "PLATFORM_WORKSPACE", value_name = "NAME")]
    pub workspace: Option<String>,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        // Never echo the argument: the value may be a credential.
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}

/// `--var NAME=VALUE`. A function value parser would have clap quote the
/// rejected argument in its error ("invalid value '…'"); this one makes its
/// own error, which never shows it.
#[derive(Clone)]
struct VarParser;

impl clap::builder::TypedValueParser for VarParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        value
            .to_str()
            .ok_or_else(|| "expected NAME=VALUE in UTF-8".to_owned())
            .and_then(parse_var)
            .map_err(|why| {
                cmd.clone().error(
                    clap::error::ErrorKind::ValueValidation,
                    format!(
                        "invalid value for '--var <NAME=VALUE>': {why} (the argument is not \
                         shown: it may hold a credential)"
                    ),
                )
            })
    }
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The run to apply (default: the newest bundle; required with --server).
    pub run: Option<String>,
    /// A control-plane server (`platform-broker serve`): the server runs it.
    #[arg(long, env = "PLATFORM_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Terraform working directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The run to approve (its id, as `plan` and `runs` print it).
    pub run: String,
    /// Why it is approved (recorded in the approval and the audit trail).
    #[arg(long)]
    pub reason: String,
    /// A control-plane server (`platform-broker serve`): the server runs it.
    #[arg(long, env = "PLATFORM_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Terraform working directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(clap::Args)]
pub struct DriftArgs {
    /// Working directories to check, one after another (each with its own
    /// broker home unless --home is given).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Acknowledge drift of ADDRESS (optionally one attribute) until a date.
    #[arg(long, value_name = "ADDRESS")]
    pub ack: Option<String>,
    /// With --ack: acknowledge only this attribute's drift.
    #[arg(long, requires = "ack")]
    pub attribute: Option<String>,
    /// With --ack: the last day the acknowledgement holds (today or later).
    #[arg(long, requires = "ack", value_name = "YYYY-MM-DD")]
    pub until: Option<String>,
    /// With --ack: why the drift is accepted (recorded and shown in reports).
    #[arg(long, requires = "ack")]
    pub reason: Option<String>,
    /// A control-plane server (`platform-broker serve`): the server runs it.
    #[arg(long, env = "PLATFORM_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --server: the workspace on the server.
    #[arg(long, env = "PLATFORM_WORKSPACE", value_name = "NAME")]
    pub workspace: Option<String>,
}

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Terraform working directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// A control-plane server (`platform-broker serve`): the server runs it.
    #[arg(long, env = "PLATFORM_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --server: the workspace on the server.
    #[arg(long, env = "PLATFORM_WORKSPACE", value_name = "NAME")]
    pub workspace: Option<String>,

    /// Print the runs as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The `terraform show -json` plan document; `-` reads standard input.
    #[arg(long, value_name = "PLAN.json")]
    pub plan: PathBuf,
    #[command(flatten)]
    pub inputs: Inputs,
    /// Environment name policies see (input.run.workspace.environment).
    #[arg(long, env = "PLATFORM_ENVIRONMENT", default_value = "default")]
    pub environment: String,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print the report as one Markdown PR comment.
    #[arg(long)]
    pub markdown: bool,
    /// Also write policy findings as SARIF 2.1.0 to this file.
    #[arg(long)]
    pub sarif: Option<PathBuf>,
    /// Also write the complete input document the policies are evaluated on (JSON) to this
    /// file, e.g. to run `opa eval -i FILE` on it.
    #[arg(long, value_name = "FILE")]
    pub input_out: Option<PathBuf>,
    /// Print how long each policy set took to standard error (to find the set that is slow on
    /// a large plan; the configured `timeout` applies to the whole evaluation).
    #[arg(long)]
    pub timings: bool,
    /// The Terraform configuration the plan was made from: where SARIF
    /// locations are looked up.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate a saved plan (`terraform show -json PLAN > plan.json`) as `plan` would: the
    /// same policy input, prices, budgets and report; no terraform run, no bundle. Exit 0
    /// allowed, 3 denied, 4 needs approval, 1 error.
    Eval(EvalArgs),
    /// Run every `test_*` rule of the configured policy sets.
    Test {
        /// Policy configuration (HCL) whose sets are tested.
        #[arg(long, env = "PLATFORM_POLICY")]
        policy: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Where the embedded store (SQLite) and the server's files live.
    #[arg(long, default_value = "platform-data", env = "PLATFORM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// A shared store instead: `postgres://USER@HOST/DB` (the password from PGPASSWORD or the
    /// URL). Several servers on one PostgreSQL share one queue and one history.
    #[arg(long, env = "PLATFORM_STORE")]
    pub store: Option<String>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Development only: trust the `x-platform-dev-user` header as the caller's identity.
    /// Refused unless --listen is a loopback address.
    #[arg(long)]
    pub insecure_dev_auth: bool,
    /// After SIGTERM, how long running runs get to finish (e.g. 10s, 1m); then their terraform
    /// gets SIGINT (it stops gracefully: state written and unlocked) and up to 30 s more.
    #[arg(long, default_value = "10s")]
    pub grace: String,
    /// Workers executing runs in this process (0: serve the API only).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// A worker's lease on a run: a run whose worker stops renewing it for this long is
    /// errored (never retried) and its state lock released.
    #[arg(long, default_value = "60s")]
    pub lease: String,
    /// Send news of drift (a workspace's scheduled check found something new) to this URL as
    /// a signed CloudEvent (HMAC-SHA256 with the secret in PLATFORM_NOTIFY_SECRET), spooled so
    /// nothing is lost while it is down.
    #[arg(long, value_name = "URL")]
    pub notify_webhook: Option<String>,
    /// Send news of drift to a Slack incoming webhook (`{"text": …}`).
    #[arg(long, value_name = "URL")]
    pub notify_slack: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum MirrorCommand {
    /// Serve a release directory (`scripts/release --out DIR`) over Terraform's provider
    /// network mirror protocol, until SIGINT or SIGTERM. Prints the base URL and the CLI
    /// configuration block that points Terraform at it.
    Serve(MirrorServeArgs),
}

#[derive(clap::Args)]
pub struct MirrorServeArgs {
    /// The release directory: provider zips, their `_SHA256SUMS` (the hashes served),
    /// signatures, the broker tarball.
    pub dir: PathBuf,
    /// Address to listen on (port 0 picks a free one, printed at start).
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain for HTTPS (Terraform only uses https mirrors).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead, for use behind a proxy that terminates TLS.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// Provider address served, HOST/NAMESPACE/TYPE (repeatable; the TYPE names the
    /// release's `terraform-provider-TYPE_*` files).
    #[arg(
        long = "source",
        default_value = "registry.terraform.io/platform/platform"
    )]
    pub sources: Vec<String>,
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first bad event.
    Verify {
        /// Terraform working directory (its audit log is under its broker home).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// The last N events.
    Tail {
        /// Terraform working directory (its audit log is under its broker home).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// How many events.
        #[arg(short, default_value_t = 10)]
        n: usize,
    },
    /// Every event, after verifying the chain.
    Export {
        /// Terraform working directory (its audit log is under its broker home).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Deliver the events spooled for the configured webhooks, in order.
    Flush {
        /// Terraform working directory (its audit log is under its broker home).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Adopt the events a crash (or someone) left beyond the head, after
    /// checking them (with a key: only if they authenticate), or cut them
    /// (--cut); also cuts a torn last line. Prints exactly what it did and
    /// records it as an audit event.
    Repair {
        /// Terraform working directory (its audit log is under its broker home).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Remove the events beyond the head instead of adopting them.
        #[arg(long)]
        cut: bool,
    },
}

/// `--workspace` of a `--server` command.
fn server_workspace(workspace: Option<&String>) -> Result<&str> {
    workspace
        .map(String::as_str)
        .ok_or_else(|| anyhow!("--server needs --workspace NAME (or PLATFORM_WORKSPACE)"))
}

/// `plan --server`: what the server's workspace settings decide is refused
/// as a flag rather than silently ignored.
fn plan_on_server(server: &str, args: &PlanArgs) -> Result<u8> {
    let local_only = [
        ("--var", !args.vars.is_empty()),
        ("--var-file", !args.var_files.is_empty()),
        ("--target", !args.targets.is_empty()),
        ("--replace", !args.replace.is_empty()),
        ("--markdown", args.markdown),
        ("--sarif", args.sarif.is_some()),
        ("--junit", args.junit.is_some()),
    ];
    if let Some((flag, _)) = local_only.iter().find(|(_, set)| *set) {
        bail!("{flag} is not taken with --server: the server plans with the workspace's settings");
    }
    if args.inputs.policy.is_some()
        || args.inputs.pricebook.is_some()
        || args.inputs.catalog.is_some()
    {
        warning(
            "--policy, --pricebook and --catalog (and PLATFORM_POLICY/PRICEBOOK/CATALOG) are \
             ignored with --server: the workspace's selection on the server applies",
        );
    }
    crate::remote::plan(&crate::remote::PlanRequest {
        server,
        workspace: server_workspace(args.workspace.as_ref())?,
        dir: &args.dir,
        json: args.json,
        destroy: args.destroy,
    })
}

pub fn plan(global: &Global, args: PlanArgs) -> Result<u8> {
    if let Some(server) = &args.server {
        return plan_on_server(server, &args);
    }
    let ctx = global.context();
    let request = run::plan::PlanRequest {
        dir: args.dir.clone(),
        inputs: args.inputs.to_run(),
        environment: args.environment.clone(),
        expires_hours: args.expires_hours,
        destroy: args.destroy,
        vars: args.vars.clone(),
        var_files: args.var_files.clone(),
        targets: args.targets.clone(),
        replace: args.replace.clone(),
    };
    let mut say = |line: &str| progress(line);
    let mut warn = |text: &str| warning(text);
    let planned = run::plan::plan(&ctx, &request, &mut say, &mut warn)?;
    let findings = &planned.report.findings;
    if let Some(path) = &args.sarif {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&policy::report::sarif(
                findings,
                Some(&crate::locate::Locator::from_cwd(&args.dir)),
            ))?,
        )?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, policy::report::junit(findings))?;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&planned.report)?
    } else if args.markdown {
        report::markdown(&planned.report, &planned.summary.redacted)
    } else {
        report::text(&planned.report)
    };
    println!("{text}");
    Ok(planned.exit_code)
}

pub fn apply(global: &Global, args: ApplyArgs) -> Result<u8> {
    if let Some(server) = &args.server {
        let Some(run) = &args.run else {
            bail!("apply --server needs the run (as `plan --server` printed it)");
        };
        return crate::remote::apply(server, run);
    }
    let ctx = global.context();
    let request = run::apply::ApplyRequest {
        dir: args.dir.clone(),
        run: args.run.clone(),
        inputs: args.inputs.to_run(),
    };
    let mut say = |line: &str| progress(line);
    let mut warn = |text: &str| warning(text);
    let applied = run::apply::apply(&ctx, &request, &mut say, &mut warn)?;
    println!("platform-broker: applied run {}", applied.run);
    Ok(applied.exit_code)
}

pub fn approve(global: &Global, args: ApproveArgs) -> Result<u8> {
    if let Some(server) = &args.server {
        return crate::remote::approve(server, &args.run, &args.reason);
    }
    let ctx = global.context();
    let request = run::approve::ApproveRequest {
        dir: args.dir.clone(),
        run: args.run.clone(),
        reason: args.reason.clone(),
    };
    let mut warn = |text: &str| warning(text);
    let approved = run::approve::approve(&ctx, &request, &mut warn)?;
    println!(
        "platform-broker: approved run {} ({}; {} approval(s) on record)",
        approved.run, approved.identity_digest, approved.count
    );
    Ok(EXIT_OK)
}

/// Prints the audit log's warnings (events beyond the head, ...) for a
/// command that does not otherwise write the log.
fn report_audit_warnings(ctx: &Context, session: &mut run::Session) {
    match ctx.audit(session) {
        Ok(_) => {}
        Err(error) => session.warnings.push(format!("audit log: {error}")),
    }
    for text in session.warnings.drain(..) {
        if text != crate::key::Trust::UNKEYED_WARNING {
            warning(&text);
        }
    }
}

pub fn runs(global: &Global, args: RunsArgs) -> Result<u8> {
    if let Some(server) = &args.server {
        return crate::remote::runs(
            server,
            server_workspace(args.workspace.as_ref())?,
            args.json,
        );
    }
    let ctx = global.context();
    report_audit_warnings(&ctx, &mut ctx.session(&args.dir)?);
    let rows = run::runs::list(&ctx, &args.dir)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "format_version": JSON_FORMAT_VERSION,
                "runs": rows
            }))?
        );
        return Ok(EXIT_OK);
    }
    if rows.is_empty() {
        println!("No runs yet: `platform-broker plan` makes one.");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<24} {:<21} {:<15} {:<11} {:<21} approvals",
        "RUN", "CREATED", "VERDICT", "STATUS", "EXPIRES"
    );
    let dash = || "-".to_owned();
    for row in rows {
        println!(
            "{:<24} {:<21} {:<15} {:<11} {:<21} {}",
            row.id,
            row.created.unwrap_or_else(dash),
            row.verdict.unwrap_or_else(dash),
            row.status,
            row.expires.unwrap_or_else(dash),
            row.approvals
        );
    }
    Ok(EXIT_OK)
}

/// `drift DIR...`: each directory in turn. Exit 1 when any directory
/// failed (the others are still checked and reported), else 2 when any has
/// open drift, else 0. With one directory the output is that directory's
/// report; with several, text sections headed by the directory. `--json` is
/// one object whatever the number of directories:
/// `{"format_version", "dirs": [{"dir", "drift" | "error", "exit_code"}], "exit_code"}`.
pub fn drift(global: &Global, args: DriftArgs) -> Result<u8> {
    if let Some(server) = &args.server {
        let workspace = server_workspace(args.workspace.as_ref())?;
        let ack = match &args.ack {
            None => None,
            Some(address) => Some(crate::remote::DriftAck {
                address,
                attribute: args.attribute.as_deref(),
                until: args
                    .until
                    .as_deref()
                    .ok_or_else(|| anyhow!("--ack needs --until YYYY-MM-DD"))?,
                reason: args
                    .reason
                    .as_deref()
                    .ok_or_else(|| anyhow!("--ack needs --reason"))?,
            }),
        };
        return crate::remote::drift(server, workspace, ack.as_ref(), args.json);
    }
    let ctx = global.context();
    let ack = match &args.ack {
        None => None,
        Some(address) => {
            let Some(until) = args.until.clone() else {
                bail!("--ack needs --until YYYY-MM-DD");
            };
            // Checked before terraform runs: an acknowledgement that has
            // already run out would be recorded and then never apply.
            let date = crate::dates::parse_date(&until).map_err(|e| anyhow!("--until: {e}"))?;
            let today = crate::dates::today().map_err(|e| anyhow!(e))?;
            if date < today {
                bail!(
                    "--until {until} is in the past (today is {today}); give the last day the acknowledgement holds"
                );
            }
            let Some(reason) = args.reason.clone() else {
                bail!("--ack needs --reason");
            };
            Some(Ack {
                address: address.clone(),
                attribute: args.attribute.clone(),
                until,
                reason,
            })
        }
    };
    let mut say = |line: &str| progress(line);
    let mut warn = |text: &str| warning(text);
    if args.dirs.len() == 1 && (!args.json || ack.is_some()) {
        let outcome =
            run::drift::drift_dir(&ctx, &args.dirs[0], ack.as_ref(), &mut say, &mut warn)?;
        print_drift(&outcome)?;
        return Ok(outcome.code());
    }
    if ack.is_some() {
        bail!("--ack acknowledges drift in one directory: give exactly one DIR");
    }
    let mut worst = EXIT_OK;
    let mut reports = Vec::new();
    for dir in &args.dirs {
        if !args.json {
            println!("== {} ==", dir.display());
        }
        match run::drift::drift_dir(&ctx, dir, None, &mut say, &mut warn) {
            Ok(outcome) => {
                if !args.json {
                    print_drift(&outcome)?;
                }
                worst = worst_exit(worst, outcome.code());
                reports.push(
                    json!({"dir": dir, "drift": outcome.drifted(), "exit_code": outcome.code()}),
                );
            }
            Err(error) => {
                eprintln!(
                    "platform-broker: error: {}: {}",
                    dir.display(),
                    crate::render_error(&error)
                );
                worst = worst_exit(worst, EXIT_ERROR);
                reports.push(
                    json!({"dir": dir, "error": crate::render_error(&error), "exit_code": EXIT_ERROR}),
                );
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "format_version": JSON_FORMAT_VERSION,
                "dirs": reports,
                "exit_code": worst
            }))?
        );
    }
    Ok(worst)
}

/// Error beats drift beats clean.
fn worst_exit(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        EXIT_ERROR => 2,
        EXIT_CHANGES => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn print_drift(outcome: &DirDrift) -> Result<()> {
    let drifted = match outcome {
        DirDrift::Acknowledged { address, until } => {
            println!("platform-broker: acknowledged drift of {address} until {until}");
            return Ok(());
        }
        DirDrift::Checked { drifted, .. } => drifted,
    };
    if drifted.is_empty() {
        println!("No drift: the infrastructure matches the state.");
        return Ok(());
    }
    let new = drifted.iter().filter(|d| !d.seen_before).count();
    let acknowledged = drifted.iter().filter(|d| d.acknowledged.is_some()).count();
    println!(
        "Drift ({} attribute(s), {new} new, {acknowledged} acknowledged):",
        drifted.len()
    );
    for d in drifted {
        let note = match (&d.acknowledged, d.seen_before) {
            (Some(reason), _) => format!(" [acknowledged: {reason}]"),
            (None, true) => " [seen before]".to_owned(),
            (None, false) => " [new]".to_owned(),
        };
        println!(
            "  {}.{}: {} -> {}{note}",
            d.address, d.attribute, d.before, d.after
        );
    }
    Ok(())
}

pub fn policy(global: &Global, command: PolicyCommand) -> Result<u8> {
    match command {
        PolicyCommand::Eval(args) => {
            let ctx = global.context();
            let request = run::eval::EvalRequest {
                plan: args.plan.clone(),
                inputs: args.inputs.to_run(),
                environment: args.environment.clone(),
                input_out: args.input_out.clone(),
            };
            let mut warn = |text: &str| warning(text);
            let evaluated = run::eval::eval(&ctx, &request, &mut warn)?;
            if args.timings {
                eprint!(
                    "{}",
                    report::set_timings(evaluated.policy_time, &evaluated.set_times)
                );
            }
            if let Some(path) = &args.sarif {
                std::fs::write(
                    path,
                    serde_json::to_vec_pretty(&policy::report::sarif(
                        &evaluated.report.findings,
                        Some(&crate::locate::Locator::from_cwd(&args.dir)),
                    ))?,
                )?;
            }
            let text = if args.json {
                serde_json::to_string_pretty(&evaluated.report)?
            } else if args.markdown {
                report::markdown(&evaluated.report, &evaluated.summary.redacted)
            } else {
                report::text(&evaluated.report)
            };
            println!("{text}");
            Ok(evaluated.exit_code)
        }
        PolicyCommand::Test { policy } => {
            let config = PolicyConfig::load(&policy)?;
            let report = policy::run_tests(&config)?;
            for (set, rule) in &report.failed {
                println!("FAIL {set}: {rule}");
            }
            println!("{} passed, {} failed", report.passed, report.failed.len());
            Ok(if report.failed.is_empty() { EXIT_OK } else { 1 })
        }
    }
}

pub fn audit(global: &Global, command: AuditCommand) -> Result<u8> {
    let ctx = global.context();
    match command {
        AuditCommand::Verify { dir } => {
            let check = run::audit::verify(&ctx, &dir)?;
            for text in &check.warnings {
                warning(text);
            }
            let report = &check.report;
            if let Some(bad) = &report.first_bad {
                println!("audit log BROKEN at line {}: {}", bad.line, bad.reason);
                return Ok(EXIT_ERROR);
            }
            if !check.missing_runs.is_empty() {
                println!(
                    "audit log BROKEN: {} authenticated run(s) have no plan event in the log \
                     (events were removed): {}",
                    check.missing_runs.len(),
                    check.missing_runs.join(", ")
                );
                return Ok(EXIT_ERROR);
            }
            let how = if check.keyed {
                "chain intact and authenticated with the broker key".to_owned()
            } else if report.keyed_lines > 0 {
                format!(
                    "chain intact, but {} keyed event(s) cannot be authenticated without the broker key",
                    report.keyed_lines
                )
            } else {
                "chain intact (not authenticated: no broker key)".to_owned()
            };
            println!("audit log OK: {} events, {how}", report.events);
            Ok(EXIT_OK)
        }
        AuditCommand::Tail { dir, n } => {
            let mut session = ctx.session(&dir)?;
            report_audit_warnings(&ctx, &mut session);
            for line in crate::audit::tail(&session.home.audit_log(), n)? {
                println!("{line}");
            }
            Ok(EXIT_OK)
        }
        AuditCommand::Export { dir } => {
            let session = ctx.session(&dir)?;
            let mut out = std::io::stdout().lock();
            crate::audit::export_with(
                &session.home.audit_log(),
                session.trust.key.as_ref(),
                &mut out,
            )?;
            Ok(EXIT_OK)
        }
        AuditCommand::Repair { dir, cut } => {
            let mode = if cut {
                crate::audit::RepairMode::Cut
            } else {
                crate::audit::RepairMode::Adopt
            };
            let repaired = run::audit::repair(&ctx, &dir, mode)?;
            for text in &repaired.warnings {
                warning(text);
            }
            let report = &repaired.report;
            if report.is_empty() {
                println!("audit log: nothing to repair");
                return Ok(EXIT_OK);
            }
            if report.torn_bytes > 0 {
                println!("cut a torn last line ({} bytes)", report.torn_bytes);
            }
            let show = |verb: &str, list: &[crate::audit::RepairedEvent]| {
                for event in list {
                    let seq = event.seq.map_or("-".to_owned(), |s| s.to_string());
                    println!("{verb} seq {seq}: {} {}", event.type_, event.id);
                }
            };
            show("adopted", &report.adopted);
            show("cut", &report.cut);
            println!(
                "audit log repaired: {} adopted, {} cut (recorded as dev.platform.broker.audit.repair)",
                report.adopted.len(),
                report.cut.len()
            );
            Ok(EXIT_OK)
        }
        AuditCommand::Flush { dir } => {
            let session = ctx.session(&dir)?;
            let webhooks = ctx.webhooks(&session.home)?;
            if webhooks.is_empty() {
                bail!("no audit webhook is configured (see --config and docs/broker-config.md)");
            }
            let mut code = EXIT_OK;
            for mut webhook in webhooks {
                let report = webhook.flush()?;
                match &report.error {
                    None => println!(
                        "audit webhook \"{}\": delivered {}, 0 pending",
                        webhook.name(),
                        report.delivered
                    ),
                    Some(error) => {
                        println!(
                            "audit webhook \"{}\": delivered {}, {} pending in {}: {error}",
                            webhook.name(),
                            report.delivered,
                            report.pending,
                            webhook.spool_dir().display()
                        );
                        code = EXIT_ERROR;
                    }
                }
            }
            Ok(code)
        }
    }
}

pub fn mirror(command: MirrorCommand) -> Result<u8> {
    let MirrorCommand::Serve(args) = command;
    let tls = match (args.tls_cert, args.tls_key, args.plain_http) {
        (Some(cert), Some(key), false) => Some((cert, key)),
        (None, None, true) => None,
        _ => anyhow::bail!(
            "Terraform only installs from https mirrors: give --tls-cert and --tls-key, \
             or --plain-http behind a proxy that terminates TLS"
        ),
    };
    let sources = args
        .sources
        .iter()
        .map(|s| crate::mirror::Source::parse(s))
        .collect::<Result<Vec<_>>>()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let names: Vec<String> = sources.iter().map(|s| format!("\"{s}\"")).collect();
    let names = names.join(", ");
    let dir = args.dir.clone();
    let options = crate::mirror::serve::Options {
        dir: args.dir,
        listen: args.listen,
        tls,
        sources,
    };
    crate::mirror::serve::run(options, |addr, summary| {
        use std::io::Write as _;
        let url = format!("{scheme}://{addr}/");
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "platform-broker mirror: serving {} at {url}\n{summary}\n\n\
             CLI configuration (TF_CLI_CONFIG_FILE or ~/.terraformrc):\n\
             provider_installation {{\n  network_mirror {{\n    url     = \"{url}\"\n    \
             include = [{names}]\n  }}\n  direct {{\n    exclude = [{names}]\n  }}\n}}",
            dir.display()
        );
        let _ = out.flush();
    })?;
    Ok(0)
}

pub fn serve(global: &Global, args: ServeArgs) -> Result<u8> {
    let grace = crate::dates::parse_duration(&args.grace)
        .map_err(|e| anyhow::anyhow!("--grace {:?}: {e}", args.grace))?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let options = crate::server::Options {
        listen: args.listen,
        store: args.store,
        data_dir: args.data_dir,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_dev_auth: args.insecure_dev_auth,
        grace,
        workers: args.workers,
        terraform: global.terraform.clone(),
        notify_webhook: args.notify_webhook,
        notify_slack: args.notify_slack,
        lease: crate::dates::parse_duration(&args.lease)
            .map_err(|e| anyhow::anyhow!("--lease {:?}: {e}", args.lease))
            .and_then(|lease| {
                if (std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(86_400))
                    .contains(&lease)
                {
                    Ok(lease)
                } else {
                    Err(anyhow::anyhow!(
                        "--lease {:?}: between 1s and 24h",
                        args.lease
                    ))
                }
            })?,
    };
    crate::server::run(options, |addr, store| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "platform-broker serve: listening on {scheme}://{addr}/ ({store}); API document at /openapi.json"
        );
        let _ = out.flush();
    })?;
    Ok(0)
}
