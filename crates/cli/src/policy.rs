//! `tumbler policy simulate`: would a user or role be allowed, and by which
//! statement? Reads the data directory directly, like `tumbler audit`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tumbler_identity::{ContextEntry, Identity, SimulationRequest};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Evaluate actions on resources with a principal's policies, as
    /// authorization would, and say which statement decided.
    Simulate(SimulateArgs),
}

#[derive(Args)]
pub struct SimulateArgs {
    /// The server's data directory.
    #[arg(long, env = "TUMBLER_DATA_DIR")]
    data_dir: PathBuf,
    /// The user or role, e.g. arn:aws:iam::000000000000:user/alice.
    #[arg(long)]
    principal: String,
    /// An action, e.g. secretsmanager:GetSecretValue (repeatable).
    #[arg(long = "action", required = true)]
    actions: Vec<String>,
    /// A resource ARN (repeatable; default *).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// A condition key's value: KEY=VALUE[,VALUE...] (repeatable), e.g.
    /// aws:SourceIp=10.0.0.1 or secretsmanager:ResourceTag/team=payments.
    #[arg(long = "context")]
    context: Vec<String>,
    /// A file holding a resource policy to evaluate with (a secret's, say).
    #[arg(long)]
    resource_policy: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: PolicyCommand) -> Result<()> {
    let PolicyCommand::Simulate(a) = cmd;
    if !a.data_dir.join("tumbler.db").exists() {
        bail!("{} holds no Tumbler store", a.data_dir.display());
    }
    let master = crate::root::master_key(&a.data_dir, None)?;
    let store = crate::init::open_store(&a.data_dir, &master)?;
    let identity = Identity::new(store, &master);
    let context = a
        .context
        .iter()
        .map(|c| {
            let (key, values) = c
                .split_once('=')
                .with_context(|| format!("--context {c}: expected KEY=VALUE[,VALUE...]"))?;
            Ok(ContextEntry {
                key: key.to_owned(),
                values: values.split(',').map(str::to_owned).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let resource_policy = a
        .resource_policy
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
        .transpose()?;
    let results = identity
        .simulate_principal(&SimulationRequest {
            principal_arn: a.principal.clone(),
            actions: a.actions,
            resources: a.resources,
            context,
            resource_policy,
        })
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    if a.json {
        let out: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "action": r.action,
                    "resource": r.resource,
                    "decision": r.decision,
                    "explanation": r.explanation,
                    "matchedStatements": r.matched.iter().map(|m| serde_json::json!({
                        "sourcePolicyId": m.source_policy_id,
                        "sourcePolicyType": m.source_policy_type,
                        "statement": m.statement,
                        "effect": m.effect,
                    })).collect::<Vec<_>>(),
                    "failedConditions": r.failed_conditions,
                    "missingContextValues": r.missing_context_values,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for r in &results {
        println!("{} on {}: {}", r.action, r.resource, r.decision);
        println!("  {}", r.explanation);
        for m in &r.matched {
            println!(
                "  matched: {} policy {} statement {} ({})",
                m.source_policy_type, m.source_policy_id, m.statement, m.effect
            );
        }
        for c in &r.failed_conditions {
            println!("  condition not met: {c}");
        }
        if !r.missing_context_values.is_empty() {
            println!("  no value given for: {}", r.missing_context_values.join(", "));
        }
    }
    Ok(())
}
