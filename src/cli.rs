//! The `auditdesk` command line (CONTRACT.md, "The binary").

use crate::audit::filter::{Param, RawQuery};
use crate::audit::visible::escaped;
use crate::config::defaults;
use crate::ids::TokenId;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::Application;
use crate::auth::Role;
use crate::auth::password::{check_new_password, hash_password};
use crate::auth::users::{self, ChangedBy, NewUser};
use crate::config::Config;
use crate::db::{self, DatabaseUrl, DbConn};

/// Auditdesk: the audit log of what users do to a system's resources.
#[derive(Debug, Parser)]
#[command(name = "auditdesk", version, about)]
pub struct Cli {
    /// Where the data lives: postgres://..., sqlite://PATH, or a file path.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "auditdesk.db",
        global = true
    )]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web UI and the API.
    Serve(ServeArgs),
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Load events in the interchange format (NDJSON) from FILE, or - for stdin. Idempotent.
    Import {
        /// The file to read, or - for standard input.
        file: String,
    },
    /// Write events to stdout, with the same filters as the page.
    Export(ExportArgs),
    /// Load a realistic sample of a few thousand events over the last 30 days (once per hour).
    Demo,
    /// Check the log: every position holds its event unchanged, no gaps, no
    /// event outside the log, every checkpoint signed and matching it. Exit 0
    /// when all holds, 1 with one line per problem, 2 when it cannot run.
    /// Reads only.
    Verify(VerifyArgs),
    /// The key that signs checkpoints.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage streams: where every event is forwarded (webhooks, syslog).
    #[command(subcommand)]
    Stream(StreamCommand),
}

/// `stream` subcommands.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Add a stream. It forwards every event its filters match, from the
    /// first in the log, in log order, at least once.
    Add {
        #[arg(long)]
        name: String,
        /// webhook or syslog.
        #[arg(long)]
        kind: String,
        /// A webhook's URL (http:// or https://).
        #[arg(long)]
        url: Option<String>,
        /// A syslog server: tcp://HOST:PORT or udp://HOST:PORT.
        #[arg(long)]
        address: Option<String>,
        /// Read a webhook's signing secret as one line from standard input.
        #[arg(long)]
        secret_stdin: bool,
        #[command(flatten)]
        filters: FilterFlags,
    },
    /// List streams: id, name, kind, target, state, last delivered event
    /// time, events of the log behind.
    List,
    /// Pause a stream: its delivery stops where it is.
    Pause { id: i64 },
    /// Resume a paused or failing stream: delivery goes on from its position.
    Resume { id: i64 },
    /// Remove a stream.
    Remove { id: i64 },
}

/// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The verifier key the checkpoints must be signed by (name+keyid+base64,
    /// as `auditdesk key public` prints it), or a file holding it. Without
    /// it, the key of the signing key file is used.
    #[arg(long, value_name = "KEY-OR-FILE")]
    pub public_key: Option<String>,
    /// A file of checkpoints copied out of the database (`serve
    /// --checkpoint-log`): each must be in the database and match the log.
    #[arg(long, value_name = "FILE")]
    pub checkpoints: Option<PathBuf>,
    /// The signing key's file (default on SQLite: `<database file>.signing-key`).
    #[arg(long, env = "AUDITDESK_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The server's checkpoint interval, in seconds: an event received more
    /// than two intervals ago must be in a checkpoint.
    #[arg(long, env = "AUDITDESK_CHECKPOINT_INTERVAL", value_name = "SECONDS", default_value_t = crate::config::defaults::CHECKPOINT_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub checkpoint_interval: u64,
}

/// `key ...` commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the verifier key of the checkpoints' signing key (created if
    /// missing), in signed-note form: name+keyid+base64.
    Public {
        /// The signing key's file (default on SQLite: `<database file>.signing-key`).
        #[arg(long, env = "AUDITDESK_SIGNING_KEY", value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AUDITDESK_BIND", default_value = defaults::BIND)]
    pub bind: String,
    /// The URL people use to reach this server; an https:// URL makes cookies Secure.
    #[arg(long, env = "AUDITDESK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Minutes of inactivity after which a session ends.
    #[arg(long, env = "AUDITDESK_IDLE_TIMEOUT_MINUTES", default_value_t = defaults::IDLE_TIMEOUT_MINUTES, value_parser = clap::value_parser!(u64).range(1..=10080))]
    pub idle_timeout_minutes: u64,
    /// Hours after login at which a session ends, however active.
    #[arg(long, env = "AUDITDESK_ABSOLUTE_TIMEOUT_HOURS", default_value_t = defaults::ABSOLUTE_TIMEOUT_HOURS, value_parser = clap::value_parser!(u64).range(1..=720))]
    pub absolute_timeout_hours: u64,
    /// Print each stored event on stdout as one JSON line in Coder's log-export shape.
    #[arg(long)]
    pub log_audit_json: bool,
    /// Reverse proxies (CIDR blocks or addresses, comma-separated) whose
    /// X-Forwarded-For or Forwarded header names the client; others' are ignored.
    #[arg(
        long = "trusted-proxy",
        env = "AUDITDESK_TRUSTED_PROXIES",
        value_name = "CIDR[,CIDR]",
        default_value = ""
    )]
    pub trusted_proxies: crate::net::TrustedProxies,
    /// The forwarding header the trusted proxies write; the other one is
    /// passed through from the client and never read.
    #[arg(
        long,
        env = "AUDITDESK_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: crate::net::ForwardedHeader,
    /// The file of the key that signs checkpoints. Default on SQLite:
    /// `<database file>.signing-key`, created (mode 0600) when missing; on
    /// PostgreSQL it must exist (`auditdesk key public --signing-key FILE`
    /// makes one), every instance given the same, and without it there are no
    /// checkpoints.
    #[arg(long, env = "AUDITDESK_SIGNING_KEY", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Seconds between checkpoints (one is made only when the log grew).
    #[arg(long, env = "AUDITDESK_CHECKPOINT_INTERVAL", default_value_t = defaults::CHECKPOINT_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub checkpoint_interval: u64,
    /// A file each new checkpoint is appended to, a copy outside the database.
    #[arg(long, env = "AUDITDESK_CHECKPOINT_LOG", value_name = "FILE")]
    pub checkpoint_log: Option<PathBuf>,
    /// Exports of the log that may run at once, each on a database connection
    /// of its own; more are answered 503 with Retry-After.
    #[arg(long, env = "AUDITDESK_MAX_EXPORTS", default_value_t = defaults::MAX_EXPORTS, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_exports: u16,
    /// A stream whose destination has failed for this long is marked failing
    /// and not tried again until resumed: a number and s, m, h or d.
    #[arg(long, env = "AUDITDESK_STREAM_FAIL_AFTER", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub stream_fail_after: Duration,
    /// Certificate authorities (a PEM file) that HTTPS webhooks may use
    /// besides the system's: for receivers with a private CA's certificate.
    #[arg(long, env = "AUDITDESK_STREAM_CA_FILE", value_name = "FILE")]
    pub stream_ca_file: Option<PathBuf>,
}

/// `90s`, `15m`, `24h`, `7d`: at least a second, at most a year.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("'{s}' is not a duration: write a number and s, m, h or d (24h)");
    let unit = s.chars().last().ok_or_else(invalid)?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(invalid()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| invalid())?;
    match n.checked_mul(seconds) {
        Some(t) if (1..=366 * 86_400).contains(&t) => Ok(Duration::from_secs(t)),
        _ => Err(format!("'{s}': use from 1s to 366d")),
    }
}

/// Options of `export`: the page's filters as flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// csv, ndjson or coder-json.
    #[arg(long, default_value = "csv")]
    pub format: String,
    #[command(flatten)]
    pub filters: FilterFlags,
    /// Start a CSV without the UTF-8 byte-order mark that spreadsheets need to
    /// read it as UTF-8 (for tools that dislike it; JSON formats never have one).
    #[arg(long)]
    pub no_bom: bool,
}

/// The page's filters as `export`'s flags, one `--flag` per [`Param::FILTERS`]
/// (`--resource-type`, ...), so that a new filter is a new flag.
#[derive(Debug, Clone, Default)]
pub struct FilterFlags(pub RawQuery);

impl clap::FromArgMatches for FilterFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for &param in Param::FILTERS {
            if let Some(value) = matches.get_one::<String>(param.name()) {
                self.0.set(param, value.clone());
            }
        }
        Ok(())
    }
}

impl clap::Args for FilterFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Param::FILTERS.iter().fold(cmd, |cmd, &param| {
            cmd.arg(
                clap::Arg::new(param.name())
                    .long(param.flag())
                    .value_name("VALUE")
                    .help(param.help()),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it, once, on stdout.
    Create {
        #[arg(long)]
        name: String,
        /// ingest (may only send events) or read (may only read them).
        #[arg(long, default_value = "ingest")]
        scope: String,
    },
    /// List tokens: id, name, scope, created, last used, revoked.
    List,
    /// Revoke a token by id: it stops working at once.
    Revoke { id: i64 },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// site_manager, auditor or member.
        #[arg(long)]
        role: String,
        /// Read the password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: username, email, role, active or suspended.
    List,
    /// Change a user's role (ends their sessions).
    SetRole { username: String, role: String },
    /// Suspend a user (ends their sessions).
    Suspend { username: String },
    /// Reactivate a suspended user.
    Reactivate { username: String },
    /// Set a new password (ends their sessions).
    ResetPassword {
        username: String,
        /// Read the password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// A failed command: one line for stderr.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

/// Runs the command line and returns the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // verify says 1 for a problem found in the log, 2 when it could not look.
    let cannot_run = if matches!(cli.command, Command::Verify(_)) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    };
    match run(cli) {
        Ok(code) => code,
        Err(CliError(msg)) => {
            eprintln!("auditdesk: error: {msg}");
            cannot_run
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("AUDITDESK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout is for command output and the JSON audit log.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let url = DatabaseUrl::parse(&cli.database_url)?;
    // Every command but serve and migrate works on one migrated connection.
    let migrated = || -> Result<DbConn, CliError> {
        let mut conn = db::connect_one(&url)?;
        db::run_migrations(&mut conn)?;
        crate::audit::store::fill_search_docs(&mut conn)?;
        crate::integrity::seal::seal_earlier_events(&mut conn)?;
        Ok(conn)
    };
    let done = |result: Result<(), CliError>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Serve(args) => done(serve(url, args)),
        Command::Verify(args) => verify_command(&url, args),
        Command::Key(KeyCommand::Public { signing_key }) => {
            let path = signing_key
                .or_else(|| crate::config::default_signing_key(&url))
                .ok_or_else(|| {
                    CliError(
                        "on PostgreSQL the signing key has no default: give --signing-key FILE"
                            .into(),
                    )
                })?;
            let key = crate::integrity::checkpoint::load_or_create_key(
                &path,
                crate::integrity::checkpoint::KEY_NAME,
            )?;
            println!("{}", key.verifier().encode());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let mut conn = db::connect_one(&url)?;
            let applied = db::run_migrations(&mut conn)?;
            let filled = crate::audit::store::fill_search_docs(&mut conn)?;
            if filled > 0 {
                eprintln!(
                    "filled in the search text of {filled} earlier event(s); the server indexes it"
                );
            }
            let sealed = crate::integrity::seal::seal_earlier_events(&mut conn)?;
            if sealed > 0 {
                eprintln!("gave log positions to {sealed} earlier event(s)");
            }
            if applied.is_empty() {
                eprintln!("the schema of {url} is up to date");
            } else {
                eprintln!(
                    "applied {} migration(s) to {url}: {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => done(user_command(&mut migrated()?, cmd)),
        Command::Token(cmd) => done(token_command(&mut migrated()?, cmd)),
        Command::Import { file } => done(import_command(&mut migrated()?, &file)),
        Command::Export(args) => done(export_command(&mut migrated()?, args)),
        Command::Demo => done(demo_command(&mut migrated()?)),
        Command::Stream(cmd) => done(stream_command(&mut migrated()?, cmd)),
    }
}

/// `auditdesk verify`: reads the whole log, changes nothing (so it neither
/// migrates nor seals: a database whose schema has no log yet cannot be
/// checked, exit 2).
fn verify_command(url: &DatabaseUrl, args: VerifyArgs) -> Result<ExitCode, CliError> {
    use crate::integrity::note::VerifierKey;
    use base64::Engine;
    let key = match &args.public_key {
        Some(given) => Some(match VerifierKey::parse(given) {
            Ok(key) => key,
            Err(as_key) => {
                let text = std::fs::read_to_string(given).map_err(|e| {
                    CliError(format!("--public-key {given:?} is neither a key ({as_key}) nor a readable file ({e})"))
                })?;
                VerifierKey::parse(&text)
                    .map_err(|e| CliError(format!("--public-key file {given}: {e}")))?
            }
        }),
        None => match args
            .signing_key
            .clone()
            .or_else(|| crate::config::default_signing_key(url))
        {
            // Read only: verify never makes a key.
            Some(path) if path.exists() => {
                Some(crate::integrity::checkpoint::load_key(&path)?.verifier())
            }
            _ => None,
        },
    };
    let copies = match &args.checkpoints {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError(format!("--checkpoints {}: {e}", path.display())))?;
            let torn = crate::integrity::checkpoint::torn_pieces(&text);
            if torn > 0 {
                eprintln!(
                    "auditdesk: note: --checkpoints {}: {torn} piece(s) are not whole checkpoints (a write cut short by a crash?): passed over",
                    path.display()
                );
            }
            Some(crate::integrity::checkpoint::notes_in_log(&text))
        }
        None => None,
    };
    // Opening a missing SQLite file would make an empty database.
    if let DatabaseUrl::Sqlite(path) = url
        && !path.exists()
    {
        return Err(CliError(format!(
            "there is no database at {}",
            path.display()
        )));
    }
    let conn = &mut db::Database::new(url.clone()).connect_read_only()?;
    if let Err(e) = db::log::next_position(conn) {
        return Err(CliError(format!(
            "this database has no log positions to check ({e}); run `auditdesk migrate` first"
        )));
    }
    let on_terminal = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let check = crate::integrity::verify::Checks {
        key: key.as_ref(),
        copies: copies.as_deref(),
    };
    let covered_before = crate::integrity::verify::must_be_covered_before(
        chrono::Utc::now().naive_utc(),
        std::time::Duration::from_secs(args.checkpoint_interval),
    );
    let report = crate::integrity::verify::verify(conn, &check, covered_before, |read| {
        if on_terminal {
            let rate = read as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!("\r{read} events checked ({rate:.0}/s)   ");
        }
    })?;
    if on_terminal {
        eprint!("\r{:60}\r", "");
    }
    if report.coverage_unchecked && report.size > 0 {
        eprintln!(
            "auditdesk: note: there is no checkpoint at all, so whether events are signed in time was not checked (is the server given a --signing-key?)"
        );
    }
    if key.is_none() && report.checkpoints > 0 {
        eprintln!(
            "auditdesk: note: no --public-key and no signing key file: checkpoint signatures were not checked"
        );
    }
    if report.problems.is_empty() {
        let b64 = |h| base64::engine::general_purpose::STANDARD.encode(h);
        match &report.latest_checkpoint {
            Some((size, root)) => println!(
                "verified {} events, checkpoint size {size} root {}",
                report.size,
                b64(root)
            ),
            None => println!(
                "verified {} events, no checkpoint yet (log size {} root {})",
                report.size,
                report.size,
                b64(&report.root)
            ),
        }
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if report.more_problems > 0 {
        println!("... and {} more problems", report.more_problems);
    }
    Ok(ExitCode::FAILURE)
}

fn demo_command(conn: &mut DbConn) -> Result<(), CliError> {
    let events = crate::audit::demo::sample(chrono::Utc::now());
    let outcome =
        crate::audit::store::store_batch(conn, &events, crate::db::events::OnConflict::SkipEvent)?;
    db::events::optimize(conn)?;
    eprintln!(
        "demo: {} sample events stored, {} already present, {} skipped",
        outcome.stored.len(),
        outcome.already_present.len(),
        outcome.conflicts.len()
    );
    Ok(())
}

/// Shows progress on a terminal: a line rewritten a few times a second.
struct TerminalProgress {
    total_bytes: Option<u64>,
    started: std::time::Instant,
    last: std::time::Instant,
}

impl crate::audit::import::Progress for TerminalProgress {
    fn update(&mut self, bytes_read: u64, summary: &crate::audit::import::ImportSummary) {
        if self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = std::time::Instant::now();
        let rate = summary.read as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let pct = self
            .total_bytes
            .filter(|t| *t > 0)
            .map(|t| format!("{:5.1}% ", bytes_read as f64 * 100.0 / t as f64))
            .unwrap_or_default();
        eprint!(
            "\r{pct}{} read, {} stored, {} refused ({rate:.0} events/s)   ",
            summary.read,
            summary.stored,
            summary.refused.len()
        );
    }

    fn building_indexes(&mut self) {
        eprint!("\rbuilding indexes...{:40}", "");
    }
}

fn token_command(conn: &mut DbConn, cmd: TokenCommand) -> Result<(), CliError> {
    use crate::auth::tokens::{self, Scope};
    let by = ChangedBy::local_operator();
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
    };
    match cmd {
        TokenCommand::Create { name, scope } => {
            let scope: Scope = scope.parse().map_err(CliError)?;
            let (token, secret) = tokens::create(conn, &name, scope, &by)?;
            eprintln!(
                "created API token {} '{}' with scope {}; it is shown only this once:",
                token.id,
                escaped(&token.name),
                token.scope
            );
            println!("{}", secret.expose());
        }
        TokenCommand::List => {
            for t in tokens::list(conn)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    escaped(&t.name),
                    t.scope,
                    when(Some(t.created_at)),
                    when(t.last_used_at),
                    when(t.revoked_at)
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let token = tokens::revoke(conn, TokenId(id), &by)?;
            eprintln!("revoked API token {} '{}'", token.id, escaped(&token.name));
        }
    }
    Ok(())
}

fn stream_command(conn: &mut DbConn, cmd: StreamCommand) -> Result<(), CliError> {
    use crate::streams::{self, NewStream};
    let by = ChangedBy::local_operator();
    match cmd {
        StreamCommand::Add {
            name,
            kind,
            url,
            address,
            secret_stdin,
            filters,
        } => {
            let target = match (kind.as_str(), url, address) {
                ("webhook", Some(url), None) => url,
                ("syslog", None, Some(address)) => address,
                ("webhook", _, _) => {
                    return Err(CliError(
                        "a webhook stream takes --url URL (and no --address)".into(),
                    ));
                }
                ("syslog", _, _) => {
                    return Err(CliError(
                        "a syslog stream takes --address tcp://HOST:PORT or udp://HOST:PORT (and no --url)".into(),
                    ));
                }
                (other, _, _) => {
                    return Err(CliError(format!(
                        "--kind: unknown stream kind '{other}' (expected webhook or syslog)"
                    )));
                }
            };
            crate::audit::filter::AuditQuery::parse(&filters.0).map_err(|e| flag_errors(&e))?;
            let secret = if secret_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                Some(crate::auth::Secret::new(
                    line.trim_end_matches(['\r', '\n']),
                ))
            } else {
                None
            };
            let stream = streams::add(
                conn,
                NewStream {
                    name: &name,
                    kind: &kind,
                    target: &target,
                    secret,
                    filters: &filters.0,
                },
                &by,
            )
            .map_err(|e| CliError(e.to_string()))?;
            eprintln!(
                "added stream {} '{}' ({} to {})",
                stream.id,
                escaped(&stream.name),
                stream.destination.kind(),
                escaped(&stream.destination.shown())
            );
            println!("{}", stream.id);
        }
        StreamCommand::List => {
            let end = streams::log_end(conn).map_err(|e| CliError(e.to_string()))?;
            for s in streams::list(conn).map_err(|e| CliError(e.to_string()))? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    escaped(&s.name),
                    s.destination.kind(),
                    escaped(&s.destination.shown()),
                    s.health.word(),
                    s.last_delivered_time
                        .map_or_else(|| "-".to_owned(), crate::audit::event::format_time),
                    s.behind(end)
                );
            }
        }
        StreamCommand::Pause { id } | StreamCommand::Resume { id } => {
            let pause = matches!(cmd, StreamCommand::Pause { .. });
            let s =
                streams::set_paused(conn, id, pause, &by).map_err(|e| CliError(e.to_string()))?;
            eprintln!(
                "stream {} '{}' is {}",
                s.id,
                escaped(&s.name),
                s.health.word()
            );
        }
        StreamCommand::Remove { id } => {
            let s = streams::remove(conn, id, &by).map_err(|e| CliError(e.to_string()))?;
            eprintln!("removed stream {} '{}'", s.id, escaped(&s.name));
        }
    }
    Ok(())
}

/// The page's filters' errors, each named by its flag (`--action: ...`).
fn flag_errors(errors: &[crate::audit::filter::ParamError]) -> CliError {
    CliError(
        errors
            .iter()
            .map(|e| match Param::from_name(e.param) {
                Some(p) => format!("--{}: {}", p.flag(), e.message),
                None => e.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn export_command(conn: &mut DbConn, args: ExportArgs) -> Result<(), CliError> {
    use crate::audit::export::{Format, export, record_export};
    use crate::audit::filter::{AuditQuery, encode_query};
    use std::io::Write;
    let format: Format = args
        .format
        .parse()
        .map_err(|e| CliError(format!("--format: {e}")))?;
    let query = AuditQuery::parse(&args.filters.0).map_err(|e| flag_errors(&e))?;
    let by = ChangedBy::local_operator();
    record_export(
        conn,
        &by.actor,
        &by.ip,
        &by.user_agent,
        format,
        &encode_query(&query.filter_pairs()),
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut write_error = None;
    let written = export(conn, &query.filter, format, !args.no_bom, |chunk| match out
        .write_all(chunk.as_bytes())
    {
        Ok(()) => true,
        Err(e) => {
            write_error = Some(e);
            false
        }
    })?;
    match write_error.map_or_else(|| out.flush().err(), Some) {
        // A reader that stops early (`| head`) is not a failure of ours.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Some(e) => Err(CliError(format!("cannot write the export: {e}"))),
        None => {
            eprintln!("exported {written} events as {}", format.as_str());
            Ok(())
        }
    }
}

fn import_command(conn: &mut DbConn, file: &str) -> Result<(), CliError> {
    use crate::audit::import::{Progress, import};
    let started = std::time::Instant::now();
    let input: Box<dyn BufRead + Send> = if file == "-" {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| CliError(format!("cannot open {file}: {e}")))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let total_bytes = (file != "-")
        .then(|| std::fs::metadata(file).map(|m| m.len()).ok())
        .flatten();
    let on_terminal = std::io::stderr().is_terminal();
    let mut terminal = TerminalProgress {
        total_bytes,
        started,
        last: started,
    };
    let mut quiet = ();
    let progress: &mut dyn Progress = if on_terminal {
        &mut terminal
    } else {
        &mut quiet
    };
    let summary = import(conn, input, progress);
    if on_terminal {
        eprintln!();
    }
    let summary = summary?;
    for r in summary.refused.iter().take(20) {
        eprintln!("line {}: {}", r.line, r.reason);
    }
    if summary.refused.len() > 20 {
        eprintln!("... and {} more refused lines", summary.refused.len() - 20);
    }
    eprintln!("{summary} in {:.1}s", started.elapsed().as_secs_f64());
    if summary.refused.is_empty() {
        Ok(())
    } else {
        Err(CliError(format!(
            "{} line(s) refused (listed above); the other lines were stored",
            summary.refused.len()
        )))
    }
}

fn serve(url: DatabaseUrl, args: ServeArgs) -> Result<(), CliError> {
    let mut config = Config::new(url);
    config.bind = args.bind;
    config.public_url = args.public_url;
    config.idle_timeout = Duration::from_secs(args.idle_timeout_minutes * 60);
    config.absolute_timeout = Duration::from_secs(args.absolute_timeout_hours * 3600);
    config.log_audit_json = args.log_audit_json;
    config.trusted_proxies = args.trusted_proxies;
    config.forwarded_header = args.forwarded_header;
    config.max_exports = usize::from(args.max_exports);
    config.signing_key = args.signing_key;
    config.checkpoint_interval = Duration::from_secs(args.checkpoint_interval);
    config.checkpoint_log = args.checkpoint_log;
    config.streams.fail_after = args.stream_fail_after;
    if let Some(path) = &args.stream_ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            CliError(format!(
                "--stream-ca-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let roots = crate::streams::webhook::Roots::from_pem(&pem)
            .map_err(|e| CliError(format!("--stream-ca-file {}: {e}", path.display())))?;
        config.streams.webhook_roots = Some(roots);
    }
    crate::memory::tune_allocator();
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        let database = config.database_url.to_string();
        let app = Application::build(config)?;
        tracing::info!(port = app.port(), %database, "auditdesk is serving");
        app.run_until_stopped().await.map_err(CliError::from)
    })
}

/// A new password from stdin or the terminal, checked with the account's
/// username and email as `context` (see [`check_new_password`]).
fn read_password(from_stdin: bool, context: &[&str]) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        check_new_password(&password, context)?;
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError(
            "no password given: pass --password-stdin and write it on standard input, or run on a terminal".into(),
        ));
    }
    let password = rpassword::prompt_password("Password: ")?;
    check_new_password(&password, context)?;
    let again = rpassword::prompt_password("Password again: ")?;
    if again != password {
        return Err(CliError("the two passwords differ".into()));
    }
    Ok(password)
}

fn user_command(conn: &mut DbConn, cmd: UserCommand) -> Result<(), CliError> {
    let by = ChangedBy::local_operator();
    match cmd {
        UserCommand::Add {
            username,
            email,
            role,
            password_stdin,
        } => {
            let role: Role = role.parse()?;
            users::check_username(&username)?;
            users::normalize_email(&email)?;
            let password = read_password(password_stdin, &[&username, &email])?;
            let hash = hash_password(&password);
            let user = users::create(
                conn,
                &NewUser {
                    username: &username,
                    email: &email,
                    role,
                    password_hash: &hash,
                },
                &by,
            )?;
            eprintln!(
                "created {} ({}) as {}",
                user.username,
                escaped(&user.email),
                user.role
            );
        }
        UserCommand::List => {
            for u in users::list(conn)? {
                let state = if u.suspended { "suspended" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}",
                    u.username,
                    escaped(&u.email),
                    u.role,
                    state
                );
            }
        }
        UserCommand::SetRole { username, role } => {
            let role: Role = role.parse()?;
            let before = users::set_role(conn, &username, role, &by)?;
            if before.role == role {
                eprintln!("{username} already is {role}");
            } else {
                eprintln!(
                    "{username}: role {} -> {role}; their sessions have ended",
                    before.role
                );
            }
        }
        UserCommand::Suspend { username } => {
            users::set_suspended(conn, &username, true, &by)?;
            eprintln!("{username} is suspended; their sessions have ended");
        }
        UserCommand::Reactivate { username } => {
            users::set_suspended(conn, &username, false, &by)?;
            eprintln!("{username} is active");
        }
        UserCommand::ResetPassword {
            username,
            password_stdin,
        } => {
            // Fail on an unknown user before asking for a password.
            let Some(user) = db::users::find_by_username(conn, &username)? else {
                return Err(CliError(format!("no user named '{username}'")));
            };
            let password = read_password(password_stdin, &[&user.username, &user.email])?;
            let hash = hash_password(&password);
            users::reset_password(conn, &username, &hash, &by)?;
            eprintln!("{username} has a new password; their sessions have ended");
        }
    }
    Ok(())
}
