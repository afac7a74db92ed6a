//! The audit trail's share of a GetSecretValue: building the event as the
//! server does (who, from where, what was asked, which secret), its JSON,
//! and its chain MAC. BENCHMARKS.md records the numbers.
//!
//!     cargo bench -j2 -p tumbler-audit --bench event

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tumbler_audit::{AuditEvent, Chain, Resource, UserIdentity};
use tumbler_crypto::{MacPurpose, MasterKey};

const BODY: &[u8] = br#"{"SecretId":"get/0000000"}"#;
const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:get/0000000-AbCdEf";
const USER_AGENT: &str = "aws-cli/2.22.0 md/awscrt#0.23.4 ua/2.1 os/linux#6.18 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe";

/// The caller's identity: the server builds it once per access key.
fn identity() -> Arc<UserIdentity> {
    Arc::new(UserIdentity {
        kind: "IAMUser".into(),
        principal_id: Some("AIDAEXAMPLE000000001".to_owned()),
        arn: Some("arn:aws:iam::000000000000:user/admin".to_owned()),
        account_id: Some("000000000000".to_owned()),
        access_key_id: Some("AKIABENCHMARK0000001".to_owned()),
        user_name: Some("admin".to_owned()),
        session_context: None,
        invoked_by: None,
    })
}

/// The GetSecretValue event, field by field as the server fills it.
fn event(identity: &Arc<UserIdentity>) -> AuditEvent {
    AuditEvent {
        event_version: tumbler_audit::EVENT_VERSION.into(),
        user_identity: identity.clone(),
        event_time: "2026-11-24T22:00:00Z".to_owned(),
        event_source: "secretsmanager.amazonaws.com".into(),
        event_name: "GetSecretValue".to_owned(),
        aws_region: "us-east-1".to_owned(),
        source_ip_address: "127.0.0.1".to_owned(),
        user_agent: USER_AGENT.to_owned(),
        request_parameters: tumbler_audit::parameters_of_json(black_box(BODY)),
        response_elements: None,
        error_code: None,
        error_message: None,
        request_id: "b7d1c0a4-56e2-4f0e-9a31-2c8f5e7d6b10".to_owned(),
        event_id: "0f3a9c2e-7b41-4d85-8e6f-1a2b3c4d5e6f".to_owned(),
        read_only: true,
        resources: vec![Resource {
            arn: ARN.to_owned(),
            account_id: "000000000000".to_owned(),
            kind: Some("AWS::SecretsManager::Secret".into()),
        }],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: "000000000000".to_owned(),
        event_category: "Management".into(),
        tls_details: None,
    }
}

fn bench(c: &mut Criterion) {
    let chain = Chain::new(
        MasterKey::from_bytes(&[7; 32])
            .unwrap()
            .derive_mac(MacPurpose::AuditChain),
    );
    let identity = identity();
    let json = event(&identity).to_json();
    let mut g = c.benchmark_group("get_secret_value_event");
    g.bench_function("parameters", |b| {
        b.iter(|| tumbler_audit::parameters_of_json(black_box(BODY)))
    });
    g.bench_function("build", |b| b.iter(|| event(&identity)));
    g.bench_function("build_and_json", |b| b.iter(|| event(&identity).to_json()));
    g.bench_function("chain_mac", |b| b.iter(|| chain.link(&[1; 32], 42, black_box(&json))));
    g.finish();
    println!("event JSON: {} bytes", json.len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
