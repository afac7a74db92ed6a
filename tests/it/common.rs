//! Start the real `tumbler` binary on a free port and talk to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};

pub const AKID: &str = "AKIATESTBOOTSTRAP001";
pub const SECRET: &str = "testSecretAccessKeyForIntegrationTests01";

pub fn tumbler_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TUMBLER_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/it-<hash> -> target/<profile>/tumbler
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe.parent().and_then(Path::parent).expect("target dir").join("tumbler");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tumbler` first",
        bin.display()
    );
    bin
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub stderr_log: PathBuf,
}

impl Server {
    pub fn start_http() -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), true)
    }

    pub fn start_https() -> Server {
        Self::start_in(tempfile::tempdir().expect("tempdir"), false)
    }

    /// Start (or restart) a server on `dir`.
    pub fn start_in(dir: tempfile::TempDir, http: bool) -> Server {
        let stderr_log = dir.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_log)
            .expect("log file");
        let mut cmd = Command::new(tumbler_bin());
        cmd.args(["server", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--bootstrap-access-key-id",
                AKID,
                "--bootstrap-secret-access-key",
                SECRET,
            ])
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(log);
        if http {
            cmd.arg("--http");
        }
        let mut child = cmd.spawn().expect("start tumbler");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("tumbler: listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start listening");
        Server {
            child,
            url,
            dir,
            stderr_log,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stop hard (SIGKILL) and hand back the directory for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();

        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> aws_sdk_secretsmanager::Client {
        self.client_with(AKID, SECRET, "us-east-1")
    }

    pub fn client_with(&self, akid: &str, secret: &str, region: &str) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
            .endpoint_url(&self.url)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// A client that trusts only this server's generated CA (`DIR/ca.pem`).
    pub fn tls_client(&self) -> aws_sdk_secretsmanager::Client {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
        let ca = std::fs::read(self.data_dir().join("ca.pem")).expect("DIR/ca.pem is written on first start");
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(
                TlsContext::builder()
                    .with_trust_store(TrustStore::empty().with_pem_certificate(ca))
                    .build()
                    .expect("tls context"),
            )
            .build_https();
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
            .endpoint_url(&self.url)
            .http_client(http)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
            .endpoint_url(&self.url)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The AWS error code of an SDK error.
pub fn code<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("not a service error: {e:?}"))
}

pub fn file_contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path)
        .map(|b| b.windows(needle.len()).any(|w| w == needle))
        .unwrap_or(false)
}
