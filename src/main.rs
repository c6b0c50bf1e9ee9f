//! The `lagwatch` command: parses arguments, loads the configuration, starts logging and hands
//! over to [`lagwatch::app::run`]. Exit codes: 0 success, 2 configuration or start-up error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use lagwatch::config::Config;

#[derive(Parser, Debug)]
#[command(
    name = "lagwatch",
    version,
    about = "Kafka consumer-lag exporter for Prometheus"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Configuration file (YAML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Also reload the configuration on `POST /-/reload` (SIGHUP always does).
    #[arg(long = "web.enable-reload")]
    web_enable_reload: bool,
    /// Log filter (tracing-subscriber syntax, e.g. `info` or `lagwatch=debug`); RUST_LOG wins.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validates a configuration file and prints the effective settings (secrets redacted).
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Polls every cluster and prints each group's lag, time lag, eviction countdown and status.
    /// Exit code 0 when every group is ok, 1 when any is not, 2 on a configuration or connection error.
    Lag {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only groups whose id matches this regex (within the configured selector).
        #[arg(long, value_name = "RE")]
        group: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Polls to make, `poll_interval` apart; more than one applies the full status rules.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        polls: u32,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.log_level);
    match cli.command {
        Some(Command::CheckConfig { config }) => match load_and_check(&config) {
            Ok((c, _)) => {
                println!("{}: ok", config.display());
                print!("{}", c.describe());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Some(Command::Lag {
            config,
            group,
            output,
            polls,
        }) => lag(&config, group.as_deref(), output, polls),
        None => {
            let Some(path) = cli.config else {
                eprintln!("lagwatch: --config FILE is required (see --help)");
                return ExitCode::from(2);
            };
            let (config, web) = match load_and_check(&path) {
                Ok(checked) => checked,
                Err(e) => {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::from(2);
                }
            };
            let reload = lagwatch::app::Reload {
                path,
                endpoint: cli.web_enable_reload,
            };
            serve(config, web, reload)
        }
    }
}

/// The configuration at `path`, parsed and validated, with every file it names read and every
/// cluster's Kafka client created once (without polling): what start-up and `check-config` refuse.
fn load_and_check(
    path: &Path,
) -> Result<(Config, Option<lagwatch::config::WebConfig>), lagwatch::config::ConfigError> {
    let config = Config::load(path)?;
    let web = lagwatch::app::check(&config)?;
    Ok((config, web))
}

fn lag(path: &Path, group: Option<&str>, output: OutputFormat, polls: u32) -> ExitCode {
    use lagwatch::lag_command::{self, LagOptions, Output};
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let group = match group.map(regex::Regex::new).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("--group: invalid regex: {e}");
            return ExitCode::from(2);
        }
    };
    let options = LagOptions {
        group,
        output: match output {
            OutputFormat::Table => Output::Table,
            OutputFormat::Json => Output::Json,
        },
        polls,
    };
    match lag_command::collect(&config, &options) {
        Ok(rows) => {
            match options.output {
                Output::Table => print!("{}", lag_command::to_table(&rows)),
                Output::Json => println!("{}", lag_command::to_json(&rows)),
            }
            if lag_command::all_ok(&rows) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("lagwatch lag: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(
    config: Config,
    web: Option<lagwatch::config::WebConfig>,
    reload: lagwatch::app::Reload,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lagwatch: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("lagwatch: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(2);
            }
        };
        tracing::info!(listen = %config.listen, clusters = config.clusters.len(), "lagwatch started");
        match lagwatch::app::run(
            config,
            web,
            listener,
            Some(reload),
            lagwatch::app::shutdown_signal(),
        ).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("lagwatch: {e}");
                ExitCode::from(2)
            }
        }
    });
    // A poll stuck in a Kafka call must not hold the exit.
    runtime.shutdown_timeout(lagwatch::app::SHUTDOWN_GRACE);
    code
}

fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a person at a terminal: a file, a pipe or a log collector gets
    // plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
