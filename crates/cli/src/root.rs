//! The root of trust. The root key comes from one of four sources, and it
//! seals one thing: the master key, kept in `DIR/keyring.json`. Every other
//! key (KMS key material, access-key secrets, MFA seeds, the audit MAC key,
//! the STS token key) is derived from or sealed under the master key, so
//! replacing the root key re-seals the keyring alone: no store rewrite, and
//! a running server, which holds the master key in memory, never notices.
//!
//! Sources, named in the keyring so that every later start and every
//! command knows what to ask for:
//! - `file`: `DIR/root.key` (hex), generated on first start, the default;
//! - `env`: `TUMBLER_ROOT_KEY` (32 bytes, hex or base64);
//! - `passphrase`: `TUMBLER_ROOT_PASSPHRASE` (or a file named by
//!   `TUMBLER_ROOT_PASSPHRASE_FILE`) stretched with Argon2id, salt and cost
//!   in the keyring;
//! - `kms`: a root key encrypted by a remote AWS-KMS-compatible service
//!   (AWS KMS, another Tumbler) and decrypted at start, like Vault's
//!   auto-unseal. Credentials come from the standard AWS chain.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use tumbler_crypto::{MasterKey, PassphraseCost, RootKey};

use crate::init::write_private;

const KEYRING: &str = "keyring.json";
const ROOT_KEY_FILE: &str = "root.key";
/// A root key file written by a rotation before the keyring names it.
const NEW_ROOT_KEY_FILE: &str = "root.key.new";
const MIN_PASSPHRASE_CHARS: usize = 12;
/// Bound into every remote Encrypt/Decrypt of a root key (AAD), so the
/// ciphertext cannot be passed off as another application's data.
const KMS_CONTEXT: (&str, &str) = ("tumbler:purpose", "root-key");

/// Where the root key comes from, as recorded in the keyring.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum RootSource {
    File,
    Env,
    Passphrase {
        salt: String,
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    },
    Kms(RemoteKms),
}

/// A remote KMS key that encrypts the root key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteKms {
    pub key_id: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// PEM CA bundle to trust instead of the system's (a Tumbler's ca.pem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The root key's CiphertextBlob, base64; empty until encrypted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Keyring {
    format: u32,
    root: RootSource,
    /// The master key sealed under the root key, base64.
    sealed_master: String,
    /// When the root key last changed (RFC 3339).
    root_since: String,
}

/// Which kind of root key to use, chosen on first start or for a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    File,
    Env,
    Passphrase,
    Kms,
}

/// The remote KMS key given on the command line.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KmsArgs {
    /// Remote KMS key (id, ARN or alias) that encrypts the root key
    /// (auto-unseal): AWS KMS or another Tumbler.
    #[arg(long = "root-kms-key-id", env = "TUMBLER_ROOT_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// Endpoint of the remote KMS (default: AWS's endpoint for the region).
    #[arg(
        long = "root-kms-endpoint",
        env = "TUMBLER_ROOT_KMS_ENDPOINT",
        requires = "kms_key_id"
    )]
    pub kms_endpoint: Option<String>,
    /// Region of the remote KMS key (default: the one in its ARN).
    #[arg(long = "root-kms-region", env = "TUMBLER_ROOT_KMS_REGION", requires = "kms_key_id")]
    pub kms_region: Option<String>,
    /// PEM CA bundle that signs the remote KMS endpoint's certificate.
    #[arg(long = "root-kms-ca-file", env = "TUMBLER_ROOT_KMS_CA_FILE", requires = "kms_key_id")]
    pub kms_ca_file: Option<PathBuf>,
}

impl KmsArgs {
    fn remote(&self) -> Result<Option<RemoteKms>> {
        let Some(key_id) = &self.kms_key_id else {
            return Ok(None);
        };
        let region = match &self.kms_region {
            Some(r) => r.clone(),
            None => match key_id.strip_prefix("arn:").and_then(|r| r.split(':').nth(2)) {
                Some(r) if !r.is_empty() => r.to_owned(),
                _ => bail!("--root-kms-region is needed when --root-kms-key-id is not an ARN"),
            },
        };
        let ca_file = match &self.kms_ca_file {
            Some(f) => Some(
                f.canonicalize()
                    .with_context(|| format!("cannot read {}", f.display()))?,
            ),
            None => None,
        };
        Ok(Some(RemoteKms {
            key_id: key_id.clone(),
            region,
            endpoint: self.kms_endpoint.clone(),
            ca_file,
            ciphertext: String::new(),
        }))
    }
}

fn keyring_path(dir: &Path) -> PathBuf {
    dir.join(KEYRING)
}

fn read_keyring(dir: &Path) -> Result<Option<Keyring>> {
    let path = keyring_path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let ring: Keyring = serde_json::from_str(&text).with_context(|| format!("{} is malformed", path.display()))?;
    if ring.format != 1 {
        bail!(
            "{} has format {}, which this build does not know",
            path.display(),
            ring.format
        );
    }
    Ok(Some(ring))
}

fn write_keyring(dir: &Path, ring: &Keyring) -> Result<()> {
    write_private(
        &keyring_path(dir),
        (serde_json::to_string_pretty(ring).expect("keyring serialises") + "\n").as_bytes(),
    )
}

/// The master key of `dir`. On first start (`first_start` given, no
/// keyring yet) it is generated and sealed under a root key from the
/// chosen source.
pub fn master_key(dir: &Path, first_start: Option<&KmsArgs>) -> Result<MasterKey> {
    match read_keyring(dir)? {
        Some(ring) => {
            if first_start.is_some_and(|k| k.kms_key_id.is_some()) && !matches!(ring.root, RootSource::Kms(_)) {
                tracing::warn!(
                    "--root-kms-key-id is ignored: {} already names the root key's source \
                     (change it with `tumbler admin rotate-root-key --to kms`)",
                    keyring_path(dir).display()
                );
            }
            open_keyring(dir, &ring)
        }
        None => {
            let Some(kms) = first_start else {
                bail!(
                    "{} does not exist: is {} a Tumbler data directory?",
                    keyring_path(dir).display(),
                    dir.display()
                );
            };
            if dir.join("tumbler.db").exists() {
                bail!(
                    "{} holds a store but no {KEYRING}: restore the keyring from a backup \
                     (without it the store cannot be opened)",
                    dir.display()
                );
            }
            let remote = kms.remote()?;
            let kind = match remote {
                Some(_) => SourceKind::Kms,
                None if passphrase_given("TUMBLER_ROOT_PASSPHRASE") => SourceKind::Passphrase,
                None if std::env::var_os("TUMBLER_ROOT_KEY").is_some() => SourceKind::Env,
                None => SourceKind::File,
            };
            let (root, source) = new_root(dir, kind, remote, "TUMBLER_ROOT_KEY", "TUMBLER_ROOT_PASSPHRASE")?;
            let master = MasterKey::generate()?;
            commit(dir, &root, source, &master)?;
            Ok(master)
        }
    }
}

fn open_keyring(dir: &Path, ring: &Keyring) -> Result<MasterKey> {
    let sealed = B64
        .decode(&ring.sealed_master)
        .with_context(|| format!("{} is malformed", keyring_path(dir).display()))?;
    if ring.root == RootSource::File {
        return open_with_file_root(dir, &sealed);
    }
    let root = current_root(dir, &ring.root)?;
    root.open_master(&sealed).map_err(|_| {
        anyhow::anyhow!(
            "the root key from {} does not open {}: {}",
            describe(&ring.root),
            keyring_path(dir).display(),
            match &ring.root {
                RootSource::Passphrase { .. } => "wrong passphrase",
                RootSource::Env => "wrong TUMBLER_ROOT_KEY",
                _ => "the keyring or the key was replaced or damaged",
            }
        )
    })
}

/// `DIR/root.key` opens the keyring, or a rotation stopped between writing
/// the keyring and renaming `root.key.new` into place: finish it.
fn open_with_file_root(dir: &Path, sealed: &[u8]) -> Result<MasterKey> {
    let path = dir.join(ROOT_KEY_FILE);
    let pending = dir.join(NEW_ROOT_KEY_FILE);
    let current = if path.exists() {
        Some(read_root_file(&path)?)
    } else {
        None
    };
    if let Some(Ok(master)) = current.as_ref().map(|r| r.open_master(sealed)) {
        if pending.exists() {
            // A rotation that never reached its commit point.
            fs::remove_file(&pending).with_context(|| format!("cannot remove {}", pending.display()))?;
        }
        return Ok(master);
    }
    if pending.exists()
        && let Ok(master) = read_root_file(&pending)?.open_master(sealed)
    {
        fs::rename(&pending, &path).with_context(|| format!("cannot rename {}", pending.display()))?;
        tracing::info!("finished an interrupted root key rotation");
        return Ok(master);
    }
    if current.is_none() {
        bail!("{} does not exist, and the keyring needs it", path.display());
    }
    bail!(
        "{} does not open {}: the key file or the keyring was replaced or damaged",
        path.display(),
        keyring_path(dir).display()
    )
}

fn read_root_file(path: &Path) -> Result<RootKey> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        );
    }
    let text =
        zeroize::Zeroizing::new(fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?);
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim()).with_context(|| format!("{} is not a hex key", path.display()))?,
    );
    RootKey::from_bytes(&bytes).with_context(|| format!("{} must hold 32 bytes", path.display()))
}

fn env_root(var: &str) -> Result<RootKey> {
    let text = zeroize::Zeroizing::new(std::env::var(var).with_context(|| format!("{var} is not set"))?);
    let bytes = zeroize::Zeroizing::new(
        hex::decode(text.trim())
            .or_else(|_| B64.decode(text.trim()))
            .with_context(|| format!("{var} must be 32 bytes in hex or base64"))?,
    );
    RootKey::from_bytes(&bytes).with_context(|| format!("{var} must be 32 bytes"))
}

fn passphrase_given(var: &str) -> bool {
    std::env::var_os(var).is_some() || std::env::var_os(format!("{var}_FILE")).is_some()
}

/// The passphrase from `var`, or from the file named by `var_FILE`.
fn passphrase(var: &str) -> Result<zeroize::Zeroizing<String>> {
    let text = match std::env::var(var) {
        Ok(p) => p,
        Err(_) => match std::env::var(format!("{var}_FILE")) {
            Ok(file) => fs::read_to_string(&file).with_context(|| format!("cannot read {var}_FILE {file}"))?,
            Err(_) => bail!("the root key is a passphrase: set {var} or {var}_FILE"),
        },
    };
    let text = zeroize::Zeroizing::new(text);
    // A file's final newline is not part of the passphrase.
    Ok(zeroize::Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_owned()))
}

fn current_root(dir: &Path, source: &RootSource) -> Result<RootKey> {
    match source {
        RootSource::File => read_root_file(&dir.join(ROOT_KEY_FILE)),
        RootSource::Env => env_root("TUMBLER_ROOT_KEY"),
        RootSource::Passphrase {
            salt,
            memory_kib,
            iterations,
            parallelism,
        } => {
            let salt = B64.decode(salt).context("the keyring's passphrase salt is malformed")?;
            let cost = PassphraseCost {
                memory_kib: *memory_kib,
                iterations: *iterations,
                parallelism: *parallelism,
            };
            RootKey::from_passphrase(passphrase("TUMBLER_ROOT_PASSPHRASE")?.as_bytes(), &salt, cost)
                .context("the keyring's Argon2id parameters are out of range")
        }
        RootSource::Kms(remote) => remote_decrypt(remote),
    }
}

fn describe(source: &RootSource) -> String {
    match source {
        RootSource::File => format!("the key file {ROOT_KEY_FILE}"),
        RootSource::Env => "TUMBLER_ROOT_KEY".into(),
        RootSource::Passphrase { .. } => "the passphrase (Argon2id)".into(),
        RootSource::Kms(r) => format!("the remote KMS key {}", r.key_id),
    }
}

/// A new root key of `kind`. A `file` key is written to `root.key.new`
/// for [`commit`] to move into place; a `kms` key is encrypted remotely.
fn new_root(
    dir: &Path,
    kind: SourceKind,
    remote: Option<RemoteKms>,
    key_var: &str,
    passphrase_var: &str,
) -> Result<(RootKey, RootSource)> {
    Ok(match kind {
        SourceKind::File => {
            let root = RootKey::generate()?;
            let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(root.expose())));
            write_private(&dir.join(NEW_ROOT_KEY_FILE), text.as_bytes())?;
            (root, RootSource::File)
        }
        SourceKind::Env => (env_root(key_var)?, RootSource::Env),
        SourceKind::Passphrase => {
            let phrase = passphrase(passphrase_var)?;
            if phrase.chars().count() < MIN_PASSPHRASE_CHARS {
                bail!("the root passphrase must have at least {MIN_PASSPHRASE_CHARS} characters");
            }
            let salt = tumbler_crypto::random_bytes(16)?;
            let cost = PassphraseCost::default();
            let root = RootKey::from_passphrase(phrase.as_bytes(), &salt, cost)?;
            let source = RootSource::Passphrase {
                salt: B64.encode(salt),
                memory_kib: cost.memory_kib,
                iterations: cost.iterations,
                parallelism: cost.parallelism,
            };
            (root, source)
        }
        SourceKind::Kms => {
            let mut remote = remote.context("a KMS root key needs --root-kms-key-id")?;
            let root = RootKey::generate()?;
            remote.ciphertext = B64.encode(remote_encrypt(&remote, &root)?);
            (root, RootSource::Kms(remote))
        }
    })
}

/// Seal `master` under `root` and write the keyring: the commit point. A
/// new key file then replaces the old one; a key file no longer named is
/// removed.
fn commit(dir: &Path, root: &RootKey, source: RootSource, master: &MasterKey) -> Result<()> {
    let is_file = source == RootSource::File;
    let ring = Keyring {
        format: 1,
        root: source,
        sealed_master: B64.encode(root.seal_master(master)?),
        root_since: jiff::Timestamp::now().to_string(),
    };
    write_keyring(dir, &ring)?;
    let (path, pending) = (dir.join(ROOT_KEY_FILE), dir.join(NEW_ROOT_KEY_FILE));
    if is_file {
        fs::rename(&pending, &path).with_context(|| format!("cannot rename {}", pending.display()))?;
    } else if path.exists() {
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// `tumbler admin rotate-root-key`: a new root key, the same master key.
pub fn rotate(dir: &Path, to: Option<SourceKind>, kms: &KmsArgs) -> Result<String> {
    let ring = read_keyring(dir)?.with_context(|| format!("{} does not exist", keyring_path(dir).display()))?;
    let master = open_keyring(dir, &ring)?;
    let kind = to.unwrap_or(match ring.root {
        RootSource::File => SourceKind::File,
        RootSource::Env => SourceKind::Env,
        RootSource::Passphrase { .. } => SourceKind::Passphrase,
        RootSource::Kms(_) => SourceKind::Kms,
    });
    let remote = match (kms.remote()?, &ring.root) {
        (Some(r), _) => Some(r),
        (None, RootSource::Kms(r)) => Some(r.clone()),
        (None, _) => None,
    };
    let (root, source) = new_root(dir, kind, remote, "TUMBLER_NEW_ROOT_KEY", "TUMBLER_NEW_ROOT_PASSPHRASE")?;
    if root.open_master(&B64.decode(&ring.sealed_master)?).is_ok() {
        let _ = fs::remove_file(dir.join(NEW_ROOT_KEY_FILE));
        bail!("the new root key is the current one");
    }
    let next = match &source {
        RootSource::File => format!("the new key file {}", dir.join(ROOT_KEY_FILE).display()),
        RootSource::Env => "TUMBLER_ROOT_KEY set to the new key (TUMBLER_NEW_ROOT_KEY)".into(),
        RootSource::Passphrase { .. } => "TUMBLER_ROOT_PASSPHRASE set to the new passphrase".into(),
        RootSource::Kms(r) => format!("access to the remote KMS key {}", r.key_id),
    };
    commit(dir, &root, source, &master)?;
    Ok(format!(
        "The root key now seals {}. Running servers go on unaffected; the next start needs {next}.",
        keyring_path(dir).display()
    ))
}

fn kms_client(remote: &RemoteKms) -> Result<(tokio::runtime::Runtime, aws_sdk_kms::Client)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime for the remote KMS call")?;
    let shared = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(remote.region.clone()))
            .load(),
    );
    let mut conf = aws_sdk_kms::config::Builder::from(&shared);
    if let Some(endpoint) = &remote.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    if let Some(ca) = &remote.ca_file {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
        let pem = fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(
                TlsContext::builder()
                    .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
                    .build()
                    .context("cannot use the remote KMS CA bundle")?,
            )
            .build_https();
        conf = conf.http_client(http);
    }
    Ok((runtime, aws_sdk_kms::Client::from_conf(conf.build())))
}

fn remote_error<E, R>(op: &str, remote: &RemoteKms, e: aws_sdk_kms::error::SdkError<E, R>) -> anyhow::Error
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kms::error::ProvideErrorMetadata as _;
    // The service's code and message when it answered; otherwise the whole
    // chain (the SDK's Display alone says only "dispatch failure").
    let why = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_kms::error::DisplayErrorContext(&e).to_string(),
    };
    anyhow::anyhow!(
        "remote KMS {op} of the root key failed (key {} in {}{}): {why}",
        remote.key_id,
        remote.region,
        remote
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default()
    )
}

fn remote_encrypt(remote: &RemoteKms, root: &RootKey) -> Result<Vec<u8>> {
    let (runtime, client) = kms_client(remote)?;
    let out = runtime
        .block_on(
            client
                .encrypt()
                .key_id(&remote.key_id)
                .plaintext(aws_sdk_kms::primitives::Blob::new(root.expose()))
                .encryption_context(KMS_CONTEXT.0, KMS_CONTEXT.1)
                .send(),
        )
        .map_err(|e| remote_error("Encrypt", remote, e))?;
    Ok(out
        .ciphertext_blob
        .context("the remote KMS returned no CiphertextBlob")?
        .into_inner())
}

fn remote_decrypt(remote: &RemoteKms) -> Result<RootKey> {
    let blob = B64
        .decode(&remote.ciphertext)
        .context("the keyring's KMS ciphertext is malformed")?;
    let (runtime, client) = kms_client(remote)?;
    let out = runtime
        .block_on(
            client
                .decrypt()
                .key_id(&remote.key_id)
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
                .encryption_context(KMS_CONTEXT.0, KMS_CONTEXT.1)
                .send(),
        )
        .map_err(|e| remote_error("Decrypt", remote, e))?;
    let plain = zeroize::Zeroizing::new(
        out.plaintext
            .context("the remote KMS returned no Plaintext")?
            .into_inner(),
    );
    RootKey::from_bytes(&plain).context("the remote KMS returned a root key of the wrong length")
}
