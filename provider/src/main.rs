//! Entry point: Terraform starts us with no arguments; `--debug` serves in
//! reattach mode for debuggers and benchmarks; `docs` generates the offering
//! docs and JSON Schemas from the catalog.

use std::process::ExitCode;

fn usage() -> &'static str {
    "terraform-provider-platform: Terraform provider for the platform catalog\n\n\
     Usage:\n  terraform-provider-platform            (started by Terraform)\n  \
     terraform-provider-platform --debug    serve for TF_REATTACH_PROVIDERS\n  \
     terraform-provider-platform docs [--catalog DIR] [--out DIR] [--schemas DIR] [--check]\n      \
     write the offering docs (registry layout) and JSON Schemas (see: docs --help)\n  \
     terraform-provider-platform --version\n\n\
     Environment:\n  PLATFORM_CATALOG   directory of catalog *.hcl files (default: the compiled-in examples catalog)\n  \
     TF_LOG_PROVIDER    log level on stderr (error, warn, info, debug, trace)\n"
}

/// `VERSION (commit C)`: scripts/release records the git commit it built in
/// `PLATFORM_BUILD_COMMIT`; any other build says it has none.
fn version() -> String {
    match option_env!("PLATFORM_BUILD_COMMIT") {
        Some(commit) if !commit.is_empty() => {
            format!("{} (commit {commit})", env!("CARGO_PKG_VERSION"))
        }
        _ => format!(
            "{} (development build: no commit recorded)",
            env!("CARGO_PKG_VERSION")
        ),
    }
}

fn init_logging() {
    let level = std::env::var("TF_LOG_PROVIDER")
        .or_else(|_| std::env::var("TF_LOG"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let filter = match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => level,
        "json" => "trace".to_owned(),
        _ => "warn".to_owned(),
    };
    // stderr only: stdout belongs to the handshake.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(TerraformLogLine)
        // Our crates at the chosen level; dependencies (h2, rustls) only warn.
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "warn,provider={filter},terraform_provider_platform={filter},platform_catalog={filter}"
        )))
        .try_init();
}

/// `[LEVEL] message fields`: Terraform files plugin stderr lines under the
/// level in brackets (anything else lands at DEBUG).
struct TerraformLogLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for TerraformLogLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "[{}] ", event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Terraform's plugin client kills its providers when it exits, but not when
/// it is killed (`kill -9`, the OOM killer, a CI runner's timeout): then the
/// provider would live on, holding PostgreSQL connections and maybe half a
/// composition. On Linux the kernel sends SIGKILL when the parent goes
/// (PR_SET_PDEATHSIG). `parent` is the parent pid read before the call: if it
/// changed, the parent died before the signal was armed, and we leave now.
#[cfg(target_os = "linux")]
fn die_with_parent(parent: Option<rustix::process::Pid>) -> Result<(), String> {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    if getppid() != parent {
        return Err("Terraform exited before the provider started; exiting".to_owned());
    }
    Ok(())
}

fn main() -> ExitCode {
    #[cfg(target_os = "linux")]
    let parent = rustix::process::getppid();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let debug = match args.first().map(String::as_str) {
        None => false,
        Some("--debug") => true,
        Some("--version" | "-V") => {
            println!("terraform-provider-platform {}", version());
            return ExitCode::SUCCESS;
        }
        // Everything else about `docs` lives in the library; the plugin path
        // only pays for this one string comparison.
        Some("docs") => {
            init_logging(); // catalog warnings on stderr
            return provider::docs::cli::main(&args[1..]);
        }
        Some("--help" | "-h") => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown argument {other:?}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    init_logging();
    let launch = provider::plugin::Launch::from_env();
    if !debug && let Err(error) = launch.check() {
        eprintln!("{error}");
        return ExitCode::FAILURE;
    }
    // Only under Terraform: `--debug` serves a debugger or a shell that may
    // well go away first.
    #[cfg(target_os = "linux")]
    if !debug && let Err(error) = die_with_parent(parent) {
        eprintln!("terraform-provider-platform: {error}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let service = provider::service_from_env();
    let result = runtime.block_on(async {
        if debug {
            provider::plugin::serve_debug(service, provider::SOURCE_ADDRESS, std::io::stdout())
                .await
        } else {
            provider::plugin::serve_managed(service, &launch).await
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("terraform-provider-platform: {error}");
            ExitCode::FAILURE
        }
    }
}
