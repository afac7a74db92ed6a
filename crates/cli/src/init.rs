//! First start and every start: the data directory, the master key (see
//! root.rs), the store, TLS material and the bootstrap administrator.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tumbler_crypto::MasterKey;

use tumbler_identity::Identity;
use tumbler_secrets::SecretsService;
use tumbler_types::SensitiveString;

pub struct Options {
    pub data_dir: PathBuf,
    pub account_id: String,
    pub tls: bool,
    pub listen: SocketAddr,
    pub bootstrap: Option<(String, String)>,
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// The remote KMS key for the root key, on first start.
    pub root_kms: crate::root::KmsArgs,
}

pub struct Setup {
    pub identity: Arc<Identity>,
    pub secrets: Arc<SecretsService>,
    pub kms: Arc<tumbler_kms::Kms>,
    pub store: Arc<dyn tumbler_store::Store>,
    /// The audit chain's key holder, for pruning.
    pub audit_chain: tumbler_audit::Chain,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Set when this start created the bootstrap credentials.
    pub new_credentials: Option<(String, String)>,
    /// Seals the OAuth token signing keys.
    pub oauth_kek: tumbler_crypto::Kek,
}

/// Write a file readable by its owner only, atomically (temp file + rename),
/// so a crash never leaves half a key behind.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn tls_config(opts: &Options) -> Result<Option<Arc<rustls::ServerConfig>>> {
    if !opts.tls {
        return Ok(None);
    }
    if let Some((cert, key)) = &opts.tls_cert {
        return Ok(Some(tumbler_server::tls::server_config(cert, key)?));
    }
    let dir = opts.data_dir.join("tls");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    if !cert.exists() || !key.exists() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        let ip = opts.listen.ip();
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
        if let Ok(h) = fs::read_to_string("/etc/hostname") {
            let h = h.trim();
            if !h.is_empty() && !names.iter().any(|n| n == h) {
                names.push(h.to_owned());
            }
        }
        let generated = tumbler_server::tls::generate(&names)?;
        write_private(&key, generated.key_pem.as_bytes())?;
        fs::write(&cert, generated.cert_pem.as_bytes())?;
        fs::write(opts.data_dir.join("ca.pem"), generated.ca_pem.as_bytes())?;
    }
    Ok(Some(tumbler_server::tls::server_config(&cert, &key)?))
}

/// The audit trail's MAC chain, keyed from the master key.
pub fn audit_chain(master: &MasterKey) -> tumbler_audit::Chain {
    tumbler_audit::Chain::new(master.derive_mac(tumbler_crypto::MacPurpose::AuditChain))
}

/// The store in `dir`, its audit trail chained under the master key.
pub fn open_store(dir: &Path, master: &MasterKey) -> Result<Arc<dyn tumbler_store::Store>> {
    let store = tumbler_store::SqliteStore::open_audited(&dir.join("tumbler.db"), Arc::new(audit_chain(master)))
        .context("cannot open the store")?;
    Ok(Arc::new(store))
}

pub fn prepare(opts: &Options) -> Result<Setup> {
    tumbler_types::AccountId::parse(&opts.account_id).map_err(anyhow::Error::msg)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.data_dir)
        .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
    let master = crate::root::master_key(&opts.data_dir, Some(&opts.root_kms))?;
    let store = open_store(&opts.data_dir, &master)?;
    let kms = Arc::new(tumbler_kms::Kms::new(store.clone(), &master));
    let identity = Arc::new(Identity::new(store.clone(), &master));
    let secrets = Arc::new(SecretsService::new(store.clone(), kms.clone()));
    let tls = tls_config(opts)?;

    let creds_path = opts.data_dir.join("credentials");
    let (akid, secret, given) = match &opts.bootstrap {
        Some((a, s)) => (a.clone(), SensitiveString::new(s.clone()), true),
        None if creds_path.exists() => {
            return Ok(Setup {
                identity,
                secrets,
                kms,
                store,
                audit_chain: audit_chain(&master),
                oauth_kek: master.derive(tumbler_crypto::Purpose::OAuthSigningKey),
                tls,
                new_credentials: None,
            });
        }
        None => (
            tumbler_identity::new_access_key_id()?,
            tumbler_identity::new_secret_access_key()?,
            false,
        ),
    };
    if !tumbler_identity::is_access_key_id(&akid) {
        bail!("the bootstrap access key id must be 16 to 128 letters and digits");
    }
    if secret.expose().len() < 8 {
        bail!("the bootstrap secret access key must have at least 8 characters");
    }
    let created = identity.ensure_bootstrap(&opts.account_id, &akid, &secret)?;
    let mut new_credentials = None;
    if created || !creds_path.exists() {
        let file = format!(
            "[default]\naws_access_key_id = {akid}\naws_secret_access_key = {}\n",
            secret.expose()
        );
        write_private(&creds_path, file.as_bytes())?;
        if created || !given {
            // Absolute, so the printed `export` works from any directory.
            let shown = creds_path.canonicalize().unwrap_or(creds_path);
            new_credentials = Some((akid, shown.display().to_string()));
        }
    }
    Ok(Setup {
        identity,
        secrets,
        kms,
        store,
        audit_chain: audit_chain(&master),
        oauth_kek: master.derive(tumbler_crypto::Purpose::OAuthSigningKey),
        tls,
        new_credentials,
    })
}

pub fn first_start_message(
    dir: &Path,
    creds: &(String, String),
    scheme: &str,
    addr: SocketAddr,
    region: &str,
    tls: bool,
) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let ca = if tls {
        format!("  export AWS_CA_BUNDLE={}\n", dir.join("ca.pem").display())
    } else {
        String::new()
    };
    format!(
        "Tumbler initialised {dir}.\n\
         The bootstrap administrator's access key {akid} is in {creds} (profile \"default\").\n\
         Try it:\n\
         \x20 export AWS_SHARED_CREDENTIALS_FILE={creds}\n\
         {ca}\
         \x20 aws --endpoint-url {scheme}://{host} --region {region} secretsmanager create-secret --name demo \
         --secret-string '{{\"username\":\"alice\",\"password\":\"alice-secret\"}}'",
        dir = dir.display(),
        akid = creds.0,
        creds = creds.1,
    )
}
