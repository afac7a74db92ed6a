//! `tumbler`: the one binary. `tumbler server` initialises a data directory
//! on first start (store, root key, TLS, bootstrap administrator) and serves
//! every API on one port.

mod audit;
mod db;
mod init;
mod kafka;
mod oauth;
mod policy;
mod root;
mod rotation;

/// mimalloc: the request path allocates many small short-lived buffers
/// (headers, JSON), where it measurably beats glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use tumbler_server::audit::AuditMode;

#[derive(Parser)]
#[command(
    name = "tumbler",
    version,
    about = "A self-hosted secrets manager that speaks the AWS APIs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Secrets Manager, IAM and STS APIs.
    Server(ServerArgs),
    /// Check, search and export the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Simulate authorization: would a principal be allowed, and why?
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Administer a data directory's root of trust.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The rotation functions this server runs.
    #[command(subcommand)]
    Rotators(RotatorsCommand),
    /// Rotation state: last and next rotation, rotations under way or failing.
    #[command(subcommand)]
    Rotation(rotation::RotationCommand),
    /// Databases whose master password Tumbler manages (through a running server).
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Kafka clusters whose SCRAM users follow associated secrets (through a running server).
    #[command(subcommand)]
    Kafka(kafka::KafkaCommand),
    /// OAuth clients whose tokens Kafka brokers accept (through a running server).
    #[command(subcommand)]
    Oauth(oauth::OauthCommand),
}

#[derive(Subcommand)]
enum RotatorsCommand {
    /// The built-in rotators, with the name to pass as RotationLambdaARN.
    List,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Seal the keyring under a new root key (a new key file, TUMBLER_NEW_ROOT_KEY,
    /// TUMBLER_NEW_ROOT_PASSPHRASE or a remote KMS key). Running servers go on
    /// unaffected; the next start needs the new root key.
    RotateRootKey(RotateRootKeyArgs),
}

#[derive(Args)]
struct RotateRootKeyArgs {
    #[arg(long, env = "TUMBLER_DATA_DIR")]
    data_dir: PathBuf,
    /// Where the new root key comes from (default: where the current one does).
    #[arg(long, value_enum)]
    to: Option<root::SourceKind>,
    #[command(flatten)]
    kms: root::KmsArgs,
}

/// What happens to a call whose audit event cannot be written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AuditSetting {
    /// Refuse the call (the default).
    FailClosed,
    /// Answer the call anyway and log the failure.
    FailOpen,
    /// Record nothing.
    Off,
}

#[derive(Args)]
struct ServerArgs {
    /// Where the store, root key, TLS material and credentials live.
    #[arg(long, env = "TUMBLER_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8443", env = "TUMBLER_LISTEN")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS (local tests and benchmarks).
    #[arg(long)]
    http: bool,
    /// Region of the bootstrap administrator's account, used in examples.
    #[arg(long, default_value = "us-east-1", env = "TUMBLER_REGION")]
    region: String,
    /// Account of the bootstrap administrator.
    #[arg(long, default_value = "000000000000", env = "TUMBLER_ACCOUNT_ID")]
    account_id: String,
    /// Fix the bootstrap administrator's access key id (for automation).
    #[arg(
        long,
        env = "TUMBLER_BOOTSTRAP_ACCESS_KEY_ID",
        requires = "bootstrap_secret_access_key"
    )]
    bootstrap_access_key_id: Option<String>,
    /// Fix the bootstrap administrator's secret access key.
    #[arg(
        long,
        env = "TUMBLER_BOOTSTRAP_SECRET_ACCESS_KEY",
        requires = "bootstrap_access_key_id",
        hide_env_values = true
    )]
    bootstrap_secret_access_key: Option<String>,
    /// PEM certificate chain to serve instead of the generated one.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The audit trail: every call is recorded, and a call whose event
    /// can't be written fails (fail-closed) or goes ahead (fail-open).
    #[arg(long, value_enum, default_value = "fail-closed", env = "TUMBLER_AUDIT")]
    audit: AuditSetting,
    /// Prune audit events older than this many days, hourly (default: keep
    /// them all). `tumbler audit export` archives them first if needed.
    #[arg(long, env = "TUMBLER_AUDIT_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    audit_retention_days: Option<u32>,
    /// Let the process dump core and be traced by other processes of the
    /// same user (for debugging): a core file holds unsealed keys and
    /// secret values, so this is off by default.
    #[arg(long, env = "TUMBLER_ALLOW_CORE_DUMPS")]
    allow_core_dumps: bool,
    /// Seconds between background sweeps (purging deleted secrets,
    /// retrying failed replicas); tests shorten it.
    #[arg(long, hide = true, env = "TUMBLER_SWEEP_INTERVAL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    sweep_interval_secs: u64,
    /// A command rotator: NAME=PROGRAM [ARGS...] (split on spaces), run for
    /// each rotation step with the event on stdin; secrets select it with
    /// RotationLambdaARN arn:aws:lambda:::function:NAME. Repeatable.
    #[arg(
        long = "rotator",
        value_name = "NAME=PROGRAM",
        env = "TUMBLER_ROTATORS",
        value_delimiter = ';'
    )]
    rotators: Vec<String>,
    /// A webhook rotator: 'NAME=URL secret-file=FILE [ca=FILE] [timeout=SECS]';
    /// each step is POSTed to URL, signed with the secret in FILE; secrets
    /// select it with RotationLambdaARN arn:aws:lambda:::function:NAME.
    #[arg(
        long = "webhook-rotator",
        value_name = "SPEC",
        env = "TUMBLER_WEBHOOK_ROTATORS",
        value_delimiter = ';'
    )]
    webhook_rotators: Vec<String>,
    /// Seconds a node's claim holds a rotation without renewal; tests
    /// shorten it so a killed server's rotations resume sooner.
    #[arg(long, hide = true, env = "TUMBLER_ROTATION_LEASE_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    rotation_lease_secs: u64,
    /// Seconds between two reconciliations of every registered Kafka
    /// cluster's SCRAM users with their associated secrets (drift repair).
    #[arg(long, env = "TUMBLER_KAFKA_RECONCILE_INTERVAL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    kafka_reconcile_interval_secs: u64,
    /// The `iss` of the OAuth access tokens this server issues, and the base
    /// of its token and JWKS URLs (default: this server's own URL).
    #[arg(long, env = "TUMBLER_OAUTH_ISSUER")]
    oauth_issuer: Option<String>,
    /// The `aud` of the access tokens; Kafka brokers expect it
    /// (`sasl.oauthbearer.expected.audience`).
    #[arg(long, env = "TUMBLER_OAUTH_AUDIENCE", default_value = "kafka")]
    oauth_audience: String,
    /// CA certificates (PEM) the database rotators trust, besides the
    /// system's, for secrets with `sslmode` verify-full (or `ssl`: true).
    #[arg(long, value_name = "FILE", env = "TUMBLER_DATABASE_CA_FILE")]
    database_ca_file: Option<PathBuf>,
    /// How long a command rotator may take for one step.
    #[arg(long, default_value_t = 60, env = "TUMBLER_ROTATOR_TIMEOUT_SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    rotator_timeout_secs: u64,
    /// On first start, the root key is encrypted by this remote KMS key
    /// and decrypted by it at every start (auto-unseal). Without it the
    /// root key is TUMBLER_ROOT_PASSPHRASE (Argon2id), TUMBLER_ROOT_KEY or,
    /// by default, a generated DIR/root.key.
    #[command(flatten)]
    root_kms: root::KmsArgs,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The server logs what it does; the client commands (`tumbler db`,
    // `tumbler kafka`, ...) print their answer and only warnings besides.
    let default_filter = if matches!(cli.command, Command::Server(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Server(args) => server(args),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Rotation(cmd) => rotation::run(cmd),
        Command::Db(cmd) => db::run(cmd),
        Command::Kafka(cmd) => kafka::run(cmd),
        Command::Oauth(cmd) => oauth::run(cmd),
        Command::Rotators(RotatorsCommand::List) => {
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            let tls = tumbler_databases::DatabaseTls::new(None).map_err(anyhow::Error::msg)?;
            for r in builtin_rotators(tls, None, runtime.handle().clone()).iter() {
                println!("{}\n    {}", r.arn(), r.description());
            }
            Ok(())
        }
        Command::Admin(AdminCommand::RotateRootKey(a)) => {
            println!("{}", root::rotate(&a.data_dir, a.to, &a.kms)?);
            Ok(())
        }
    }
}

/// The rotators every server has: the random password, the databases'
/// and Kafka SCRAM's.
fn builtin_rotators(
    database_tls: tumbler_databases::DatabaseTls,
    kafka: Option<Arc<tumbler_kafka::KafkaService>>,
    runtime: tokio::runtime::Handle,
) -> tumbler_rotation::Rotators {
    let mut rotators = tumbler_rotation::Rotators::builtin();
    for rotator in tumbler_databases::rotators(database_tls, runtime) {
        rotators.add(rotator);
    }
    rotators.add(Arc::new(tumbler_kafka::KafkaScramRotator::new(kafka)));
    rotators
}

fn server(args: ServerArgs) -> Result<()> {
    if !args.allow_core_dumps {
        forbid_core_dumps()?;
    }
    let setup = init::prepare(&init::Options {
        data_dir: args.data_dir.clone(),
        account_id: args.account_id.clone(),
        tls: !args.http,
        listen: args.listen,
        bootstrap: args
            .bootstrap_access_key_id
            .clone()
            .zip(args.bootstrap_secret_access_key.clone()),
        tls_cert: args.tls_cert.clone().zip(args.tls_key.clone()),
        root_kms: args.root_kms.clone(),
    })?;
    // One scheduler thread per core we may run on (taskset/cgroup limits
    // count). On a single core the current-thread scheduler does the same
    // work without the cross-thread wakeups of the work-stealing one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = if cores == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    // Writes wait for the group commit on blocking threads. More waiting
    // threads than this add no throughput (a commit batch is already full),
    // only per-thread allocator heaps and stacks.
    .max_blocking_threads(32)
    .enable_all()
    .build()
    .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if setup.tls.is_some() { "https" } else { "http" };
        let audited = !matches!(args.audit, AuditSetting::Off);
        let database_tls = match &args.database_ca_file {
            None => tumbler_databases::DatabaseTls::new(None),
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                tumbler_databases::DatabaseTls::new(Some(pem))
            }
        }
        .map_err(anyhow::Error::msg)?;
        let kafka = Arc::new(tumbler_kafka::KafkaService::new(
            setup.secrets.clone(),
            setup.identity.clone(),
            setup.store.clone(),
            tokio::runtime::Handle::current(),
            Arc::new(move |report: &tumbler_kafka::SyncReport<'_>| {
                audited.then(|| tumbler_server::audit::kafka_sync_event(report))
            }),
        ));
        let mut rotators = builtin_rotators(
            database_tls.clone(),
            Some(kafka.clone()),
            tokio::runtime::Handle::current(),
        );
        let endpoint = format!(
            "{scheme}://{}",
            if addr.ip().is_unspecified() {
                format!("127.0.0.1:{}", addr.port())
            } else {
                addr.to_string()
            }
        );
        let ca = (setup.tls.is_some() && args.tls_cert.is_none())
            .then(|| args.data_dir.join("ca.pem").canonicalize().ok())
            .flatten();
        for spec in &args.rotators {
            let timeout = std::time::Duration::from_secs(args.rotator_timeout_secs);
            let rotator = tumbler_rotation::CommandRotator::parse(spec, &endpoint, ca.clone(), timeout)
                .map_err(anyhow::Error::msg)?;
            rotators.add(Arc::new(rotator));
        }
        for spec in &args.webhook_rotators {
            let rotator = tumbler_rotation::WebhookRotator::parse(spec, tokio::runtime::Handle::current())
                .map_err(anyhow::Error::msg)?;
            rotators.add(Arc::new(rotator));
        }
        if let Some(creds) = &setup.new_credentials {
            println!(
                "{}",
                init::first_start_message(&args.data_dir, creds, scheme, addr, &args.region, setup.tls.is_some())
            );
        }
        println!("tumbler: listening on {scheme}://{addr}");
        tracing::info!(%addr, scheme, data_dir = %args.data_dir.display(), "serving");
        let rotation = Arc::new(
            tumbler_rotation::Engine::new(
                setup.secrets.clone(),
                Arc::new(rotators),
                Arc::new(move |row: &tumbler_store::SecretRow, name: &str| {
                    audited.then(|| tumbler_server::audit::rotation_event(row, name))
                }),
            )
            .with_lease(std::time::Duration::from_secs(args.rotation_lease_secs)),
        );
        let current_events = Arc::new(tumbler_server::events::CurrentEvents::default());
        let sink = current_events.clone();
        let kafka_sink = kafka.clone();
        setup
            .secrets
            .set_current_listener(Box::new(move |arn: &str, version: &str| {
                sink.push(arn, version);
                kafka_sink.current_changed(arn);
            }));
        let metrics = Arc::new(tumbler_server::metrics::Metrics::new(
            rotation.clone(),
            setup.secrets.clone(),
            kafka.clone(),
        ));
        let databases = Arc::new(tumbler_databases::DatabaseService::new(
            setup.secrets.clone(),
            setup.store.clone(),
            database_tls,
            tokio::runtime::Handle::current(),
        ));
        let oauth = Arc::new(tumbler_oauth::OAuthService::new(
            setup.store.clone(),
            setup.oauth_kek,
            args.oauth_issuer.clone().unwrap_or_else(|| endpoint.clone()),
            args.oauth_audience.clone(),
        ));
        let state = Arc::new(tumbler_server::AppState {
            oauth,
            oauth_region: args.region.clone(),
            databases,
            kafka,
            kafka_reconcile_every: std::time::Duration::from_secs(args.kafka_reconcile_interval_secs),
            metrics,
            rotation,
            current_events,
            identity: setup.identity,
            secrets: setup.secrets,
            kms: setup.kms,
            audit_sink: tumbler_server::audit::AuditSink::new(setup.store),
            audit_identities: Default::default(),
            audit: match args.audit {
                AuditSetting::FailClosed => AuditMode::FailClosed,
                AuditSetting::FailOpen => AuditMode::FailOpen,
                AuditSetting::Off => AuditMode::Off,
            },
            audit_retention: args.audit_retention_days.map(|days| tumbler_server::AuditRetention {
                max_age: std::time::Duration::from_secs(u64::from(days) * 86_400),
                chain: setup.audit_chain,
            }),
            sweep_every: std::time::Duration::from_secs(args.sweep_interval_secs),
        });
        tumbler_server::serve(listener, setup.tls, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// No core file, and no ptrace or /proc/<pid>/mem reads by other processes
/// of the same user: the heap holds the root key and unsealed secrets.
/// RLIMIT_CORE covers systems where PR_SET_DUMPABLE is unavailable.
fn forbid_core_dumps() -> Result<()> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .context("cannot set RLIMIT_CORE to 0")?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("cannot mark the process not dumpable")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
