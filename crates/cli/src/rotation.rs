//! `tumbler rotation status`: every secret with rotation configured, when
//! it last rotated and is next due, and any rotation under way or given
//! up, with the step and error that stopped it (what to alert on).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use tumbler_secrets::meta::SecretMeta;

#[derive(Subcommand)]
pub enum RotationCommand {
    /// Rotation state of every secret that has rotation configured.
    Status(StatusArgs),
}

#[derive(Args)]
pub struct StatusArgs {
    #[arg(long, env = "TUMBLER_DATA_DIR")]
    data_dir: PathBuf,
    /// One JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Only secrets whose last rotation was given up, or is being retried.
    #[arg(long)]
    failing: bool,
}

fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn run(cmd: RotationCommand) -> Result<()> {
    let RotationCommand::Status(a) = cmd;
    if !a.data_dir.join("tumbler.db").exists() {
        bail!("{} holds no Tumbler store", a.data_dir.display());
    }
    let master = crate::root::master_key(&a.data_dir, None)?;
    let store = crate::init::open_store(&a.data_dir, &master)?;
    let mut failing = 0;
    for id in store.secrets_with_rotation(usize::MAX >> 1)? {
        let Some(state) = store.secret_by_id(id)? else {
            continue;
        };
        let meta = SecretMeta::parse(&state.row.meta).unwrap_or_default();
        let status = meta.rotation_status();
        let state_text = match &status {
            None => "ok".into(),
            Some(st) => {
                let error = st.last_error.as_ref();
                let step = error.map_or("?", |e| e.step.as_str());
                let message = error.map_or("?", |e| e.message.as_str());
                match st.state {
                    "Rotating" => format!("rotating (version {})", st.version_id.as_deref().unwrap_or("?")),
                    "Retrying" => format!("retrying (attempt {} failed at {step}: {message})", st.attempts),
                    _ => format!(
                        "FAILED: gave up after {} attempts at {step} ({}): {message}",
                        st.attempts,
                        time(meta.rotation_failure.as_ref().map(|f| f.at_ms))
                    ),
                }
            }
        };
        let is_failing = status.as_ref().is_some_and(|st| st.state != "Rotating");
        failing += usize::from(is_failing);
        if a.failing && !is_failing {
            continue;
        }
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "ARN": state.row.arn,
                    "RotationEnabled": meta.rotation_enabled,
                    "RotationLambdaARN": meta.rotation_lambda_arn,
                    "LastRotatedDate": meta.last_rotated_ms.map(|ms| time(Some(ms))),
                    "NextRotationDate": meta.next_rotation_ms.filter(|_| meta.rotation_enabled == Some(true)).map(|ms| time(Some(ms))),
                    "TumblerRotationStatus": status,
                    "Failing": is_failing,
                })
            );
        } else {
            println!(
                "{}\n  enabled: {}  rotator: {}\n  last rotated: {}  next due: {}\n  state: {}",
                state.row.arn,
                meta.rotation_enabled == Some(true),
                meta.rotation_lambda_arn.as_deref().unwrap_or("-"),
                time(meta.last_rotated_ms),
                if meta.rotation_enabled == Some(true) {
                    time(meta.next_rotation_ms)
                } else {
                    "-".into()
                },
                state_text
            );
        }
    }
    if failing > 0 {
        eprintln!("{failing} secret(s) failing rotation");
        // A non-zero exit, so a cron job or a probe can alert on it.
        std::process::exit(2);
    }
    Ok(())
}
