//! Load generation and measurements for BENCHMARKS.md.
//!
//! - `seed`: CreateSecret N secrets with C concurrent clients (creates/s).
//! - `put`: PutSecretValue for D seconds with C clients (durable writes/s).
//! - `list`: ListSecrets first page, repeated (p50/p99 latency).
//! - `rotate`: RotateSecret on N seeded secrets with a rotator, then wait
//!   until every one's AWSCURRENT is its new version (rotations/s).
//! - `kms`: Encrypt, Decrypt or GenerateDataKey of 64 bytes under a new
//!   customer key, for D seconds with C clients (calls/s).
//! - `wrk-script`: a wrk Lua script that replays one SigV4-signed
//!   GetSecretValue request (valid for the 15-minute signature window, as a
//!   busy SDK client's requests are); the server verifies every one in full.

use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[arg(long, default_value = "http://127.0.0.1:8443")]
    endpoint: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_access_key: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Seed {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
    /// Writes go round the secrets `<prefix>/0000000..<secrets>` (one secret
    /// alone would hit the quota of 100 versions a day, as on AWS).
    Put {
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long)]
        secrets: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    List {
        #[arg(long, default_value_t = 50)]
        repeat: usize,
    },
    Rotate {
        #[arg(long, default_value = "bench")]
        prefix: String,
        #[arg(long)]
        secrets: usize,
        #[arg(long, default_value = "arn:aws:lambda:::function:tumbler-random-password")]
        rotator: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    Kms {
        #[arg(long, value_enum)]
        op: KmsOp,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    WrkScript {
        #[arg(long)]
        secret_id: String,
    },
    /// A wrk script replaying one signed KMS call under a new customer key
    /// (Decrypt replays one ciphertext of 64 bytes).
    KmsWrkScript {
        #[arg(long, value_enum)]
        op: KmsOp,
    },
}

fn client(cli: &Cli) -> aws_sdk_secretsmanager::Client {
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cli.region.clone()))
        .credentials_provider(Credentials::new(
            &cli.access_key_id,
            &cli.secret_access_key,
            None,
            None,
            "bench",
        ))
        .endpoint_url(&cli.endpoint)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum KmsOp {
    Encrypt,
    Decrypt,
    GenerateDataKey,
}

fn kms_client(cli: &Cli) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cli.region.clone()))
        .credentials_provider(Credentials::new(
            &cli.access_key_id,
            &cli.secret_access_key,
            None,
            None,
            "bench",
        ))
        .endpoint_url(&cli.endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// Run `call(task, i)` from `concurrency` tasks for `seconds`; the sorted
/// latencies of every call and the wall time.
async fn run_for<F, Fut>(seconds: u64, concurrency: usize, call: F) -> Result<(Vec<Duration>, f64)>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                let s = Instant::now();
                call(t, i).await?;
                lat.push(s.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok((all, started.elapsed().as_secs_f64()))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let c = client(&cli);
    match &cli.command {
        Command::Seed {
            count,
            concurrency,
            prefix,
        } => {
            let started = Instant::now();
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..*concurrency {
                let (c, next, prefix, count) = (c.clone(), next.clone(), prefix.clone(), *count);
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= count {
                            return Ok::<_, anyhow::Error>(());
                        }
                        c.create_secret()
                            .name(format!("{prefix}/{i:07}"))
                            .description(format!("benchmark secret {i}"))
                            .secret_string(format!("{{\"username\":\"u{i}\",\"password\":\"p{i}\"}}"))
                            .send()
                            .await
                            .with_context(|| format!("create {i}"))?;
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "seed count={count} concurrency={concurrency} seconds={secs:.2} creates_per_sec={:.0}",
                *count as f64 / secs
            );
        }
        Command::Put {
            prefix,
            secrets,
            seconds,
            concurrency,
        } => {
            let (prefix, secrets) = (prefix.clone(), *secrets);
            let (all, secs) = run_for(*seconds, *concurrency, move |t, i| {
                let (c, id) = (c.clone(), format!("{prefix}/{:07}", (t * 7919 + i * 104_729) % secrets));
                async move {
                    c.put_secret_value()
                        .secret_id(&id)
                        .secret_string(format!("v-{t}-{i}"))
                        .send()
                        .await?;
                    Ok(())
                }
            })
            .await?;
            println!(
                "put concurrency={concurrency} writes={} puts_per_sec={:.0} p50_ms={:.2} p99_ms={:.2}",
                all.len(),
                all.len() as f64 / secs,
                percentile(&all, 0.5),
                percentile(&all, 0.99)
            );
        }
        Command::Rotate {
            prefix,
            secrets,
            rotator,
            concurrency,
        } => {
            let started = Instant::now();
            let names: Vec<String> = (0..*secrets).map(|i| format!("{prefix}/{i:07}")).collect();
            // Start every rotation.
            let tokens = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..*concurrency {
                let (c, next, names, tokens, rotator) =
                    (c.clone(), next.clone(), names.clone(), tokens.clone(), rotator.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(name) = names.get(i) else {
                            return Ok::<_, anyhow::Error>(());
                        };
                        let out = c
                            .rotate_secret()
                            .secret_id(name)
                            .rotation_lambda_arn(&rotator)
                            .send()
                            .await?;
                        let token = out.version_id.context("RotateSecret returned no VersionId")?;
                        tokens.lock().expect("tokens").push((name.clone(), token));
                    }
                }));
            }
            for t in tasks {
                t.await??;
            }
            let requested = started.elapsed().as_secs_f64();
            // Wait until each AWSCURRENT is its token.
            let mut pending: Vec<(String, String)> = std::mem::take(&mut *tokens.lock().expect("tokens"));
            while !pending.is_empty() {
                let mut still = Vec::new();
                for (name, token) in pending {
                    let d = c.describe_secret().secret_id(&name).send().await?;
                    let done = d
                        .version_ids_to_stages()
                        .and_then(|m| m.get(&token))
                        .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"));
                    if !done {
                        still.push((name, token));
                    }
                }
                pending = still;
                if !pending.is_empty() {
                    anyhow::ensure!(
                        started.elapsed() < Duration::from_secs(1800),
                        "rotations did not finish"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rotate secrets={secrets} rotator={rotator} requested_in_s={requested:.2} all_done_in_s={secs:.2} rotations_per_sec={:.1}",
                *secrets as f64 / secs
            );
        }
        Command::Kms {
            op,
            seconds,
            concurrency,
        } => {
            use aws_sdk_kms::primitives::Blob;
            let k = kms_client(&cli);
            let key_id = k
                .create_key()
                .description("tumbler-bench")
                .send()
                .await?
                .key_metadata
                .context("CreateKey returned no metadata")?
                .key_id;
            let plaintext = Blob::new(vec![7u8; 64]);
            let blob = k
                .encrypt()
                .key_id(&key_id)
                .plaintext(plaintext.clone())
                .encryption_context("purpose", "bench")
                .send()
                .await?
                .ciphertext_blob
                .context("Encrypt returned no blob")?;
            let op = *op;
            let (all, secs) = run_for(*seconds, *concurrency, move |_, _| {
                let (k, key_id, plaintext, blob) = (k.clone(), key_id.clone(), plaintext.clone(), blob.clone());
                async move {
                    match op {
                        KmsOp::Encrypt => {
                            k.encrypt()
                                .key_id(key_id)
                                .plaintext(plaintext)
                                .encryption_context("purpose", "bench")
                                .send()
                                .await?;
                        }
                        KmsOp::Decrypt => {
                            k.decrypt()
                                .ciphertext_blob(blob)
                                .encryption_context("purpose", "bench")
                                .send()
                                .await?;
                        }
                        KmsOp::GenerateDataKey => {
                            k.generate_data_key()
                                .key_id(key_id)
                                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                                .send()
                                .await?;
                        }
                    }
                    Ok(())
                }
            })
            .await?;
            println!(
                "kms op={op:?} concurrency={concurrency} calls={} calls_per_sec={:.0} p50_ms={:.2} p99_ms={:.2}",
                all.len(),
                all.len() as f64 / secs,
                percentile(&all, 0.5),
                percentile(&all, 0.99)
            );
        }
        Command::List { repeat } => {
            let mut lat = Vec::new();
            for _ in 0..*repeat {
                let s = Instant::now();
                let r = c.list_secrets().max_results(100).send().await?;
                lat.push(s.elapsed());
                anyhow::ensure!(r.secret_list().len() == 100, "expected a full page");
            }
            lat.sort();
            println!(
                "list_first_page repeat={repeat} p50_ms={:.2} p99_ms={:.2}",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        }
        Command::WrkScript { secret_id } => print!(
            "{}",
            wrk_script(
                &cli,
                "secretsmanager",
                "secretsmanager.GetSecretValue",
                &format!("{{\"SecretId\":\"{secret_id}\"}}")
            )?
        ),
        Command::KmsWrkScript { op } => {
            use base64::Engine;
            let k = kms_client(&cli);
            let key_id = k
                .create_key()
                .description("tumbler-bench")
                .send()
                .await?
                .key_metadata
                .context("CreateKey returned no metadata")?
                .key_id;
            let plaintext = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
            let body = match op {
                KmsOp::Encrypt => format!(
                    r#"{{"KeyId":"{key_id}","Plaintext":"{plaintext}","EncryptionContext":{{"purpose":"bench"}}}}"#
                ),
                KmsOp::GenerateDataKey => format!(r#"{{"KeyId":"{key_id}","KeySpec":"AES_256"}}"#),
                KmsOp::Decrypt => {
                    let blob = k
                        .encrypt()
                        .key_id(&key_id)
                        .plaintext(aws_sdk_kms::primitives::Blob::new(vec![7u8; 64]))
                        .encryption_context("purpose", "bench")
                        .send()
                        .await?
                        .ciphertext_blob
                        .context("Encrypt returned no blob")?;
                    let blob = base64::engine::general_purpose::STANDARD.encode(blob.as_ref());
                    format!(r#"{{"CiphertextBlob":"{blob}","EncryptionContext":{{"purpose":"bench"}}}}"#)
                }
            };
            let target = match op {
                KmsOp::Encrypt => "TrentService.Encrypt",
                KmsOp::Decrypt => "TrentService.Decrypt",
                KmsOp::GenerateDataKey => "TrentService.GenerateDataKey",
            };
            print!("{}", wrk_script(&cli, "kms", target, &body)?);
        }
    }
    Ok(())
}

fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn wrk_script(cli: &Cli, service: &str, target: &str, body: &str) -> Result<String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;

    let uri: http::Uri = cli.endpoint.parse()?;
    let host = uri.authority().context("endpoint has no host")?.to_string();
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let identity = Credentials::new(&cli.access_key_id, &cli.secret_access_key, None, None, "bench").into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(&cli.region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()?
        .into();
    let signable = SignableRequest::new(
        "POST",
        cli.endpoint.clone(),
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )?;
    let (instructions, _) = sign(signable, &params)?.into_parts();
    let mut lines = vec![
        "wrk.method = \"POST\"".to_owned(),
        format!("wrk.body = {}", lua_string(body)),
    ];
    for (k, v) in headers.iter().filter(|(k, _)| *k != "host") {
        lines.push(format!("wrk.headers[{}] = {}", lua_string(k), lua_string(v)));
    }
    for (k, v) in instructions.headers() {
        lines.push(format!("wrk.headers[{}] = {}", lua_string(k), lua_string(v)));
    }
    Ok(lines.join("\n") + "\n")
}
