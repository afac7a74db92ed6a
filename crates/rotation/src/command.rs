//! Command rotators: a local program run once per step with the event AWS
//! sends a rotation Lambda on stdin (`{"Step", "SecretId",
//! "ClientRequestToken"}`). Like a Lambda, the program calls back into
//! Tumbler's Secrets Manager API with its own credentials; it finds the
//! server in `SECRETS_MANAGER_ENDPOINT`, the variable AWS's rotation
//! templates read, so they run unchanged.
//!
//! The program gets a clean environment: PATH, HOME, LANG, TZ and the
//! `AWS_*` variables of the server's, plus SECRETS_MANAGER_ENDPOINT and,
//! behind TLS, AWS_CA_BUNDLE. Nothing else of the server's environment
//! (its root key or passphrase, its bootstrap secret) reaches it.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Rotator, Step, StepCall, StepError};

/// Names of command rotators are used in this ARN form.
pub const ARN_PREFIX: &str = "arn:aws:lambda:::function:";
/// Output kept from a failed step, for the failure message.
const KEEP_OUTPUT: usize = 400;

pub struct CommandRotator {
    arn: String,
    description: String,
    program: PathBuf,
    args: Vec<String>,
    endpoint: String,
    ca_bundle: Option<PathBuf>,
    timeout: Duration,
}

impl CommandRotator {
    /// `spec` is `NAME=PROGRAM [ARGS...]` (split on whitespace, no shell).
    pub fn parse(spec: &str, endpoint: &str, ca_bundle: Option<PathBuf>, timeout: Duration) -> Result<Self, String> {
        let (name, command) = spec
            .split_once('=')
            .ok_or_else(|| format!("--rotator {spec}: give NAME=PROGRAM [ARGS...]"))?;
        let name = name.trim();
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok || name.starts_with("tumbler-") {
            return Err(format!(
                "--rotator {spec}: the name must be 1-64 letters, digits, - or _, and not start with tumbler-"
            ));
        }
        let mut words = command.split_whitespace();
        let program = words
            .next()
            .ok_or_else(|| format!("--rotator {spec}: no program given"))?;
        Ok(CommandRotator {
            arn: format!("{ARN_PREFIX}{name}"),
            description: format!("runs {command} for each step"),
            program: PathBuf::from(program),
            args: words.map(str::to_owned).collect(),
            endpoint: endpoint.to_owned(),
            ca_bundle,
            timeout,
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args).env_clear();
        for (k, v) in std::env::vars_os() {
            let keep = k
                .to_str()
                .is_some_and(|k| matches!(k, "PATH" | "HOME" | "LANG" | "TZ") || k.starts_with("AWS_"));
            if keep {
                c.env(k, v);
            }
        }
        c.env("SECRETS_MANAGER_ENDPOINT", &self.endpoint);
        // The server's own CA, unless the operator named a bundle.
        if let Some(ca) = &self.ca_bundle
            && std::env::var_os("AWS_CA_BUNDLE").is_none()
        {
            c.env("AWS_CA_BUNDLE", ca);
        }
        c
    }
}

/// The last `KEEP_OUTPUT` bytes of a stream, as text.
fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(KEEP_OUTPUT);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

impl Rotator for CommandRotator {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn step(&self, step: Step, call: &StepCall<'_>) -> Result<(), StepError> {
        let event = call.event(step);
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| StepError(format!("cannot run {}: {e}", self.program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading its input is its business.
            let _ = stdin.write_all(event.to_string().as_bytes());
        }
        // Read stderr on a thread, so a chatty program cannot block on a full pipe.
        let mut stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut out);
            }
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(StepError(format!(
                        "{} did not finish {} within {} s",
                        self.program.display(),
                        step.as_str(),
                        self.timeout.as_secs()
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(StepError(format!("cannot wait for {}: {e}", self.program.display()))),
            }
        };
        let errors = reader.join().unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(StepError(format!(
                "{} exited with {status}: {}",
                self.program.display(),
                tail(&errors)
            )))
        }
    }
}
