//! SigV4's share of a GetSecretValue: parsing the Authorization header and
//! verifying the signature in full (canonical request, its SHA-256, the
//! string to sign's HMAC) for a request signed as the Rust SDK signs it.
//! The server derives a signing key once per key, day, region and service,
//! so that is measured apart. BENCHMARKS.md records the numbers.
//!
//!     cargo bench -j2 -p tumbler-sigv4 --bench verify

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{ORACLE_SECRET, OracleRequest, oracle_sign, to_http1};
use criterion::{Criterion, criterion_group, criterion_main};
use tumbler_sigv4::SigningKey;

fn bench(c: &mut Criterion) {
    let mut r = OracleRequest::new("POST", "http://127.0.0.1:8443/");
    r.body = br#"{"SecretId":"get/0000000"}"#.to_vec();
    for (k, v) in [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
        ("content-length", "26"),
        ("user-agent", "aws-sdk-rust/1.3.9 os/linux lang/rust/1.91.0"),
        (
            "x-amz-user-agent",
            "aws-sdk-rust/1.3.9 ua/2.1 api/secretsmanager/1.98.0 os/linux lang/rust/1.91.0",
        ),
        ("amz-sdk-invocation-id", "5c4cbbd9-3e5f-4a5e-b1bb-0f1a6d5c9e21"),
        ("amz-sdk-request", "attempt=1; max=3"),
    ] {
        r.headers.push((k.to_owned(), v.to_owned()));
    }
    let (parts, ()) = to_http1(oracle_sign(&r)).into_parts();
    let auth = tumbler_sigv4::parse(&parts).unwrap();
    let key = SigningKey::derive(ORACLE_SECRET.as_bytes(), &auth.scope_date, &auth.region, &auth.service);
    tumbler_sigv4::verify(&auth, &parts, &r.body, &key).expect("the oracle's signature verifies");

    let mut g = c.benchmark_group("sigv4_get_secret_value");
    g.bench_function("parse", |b| b.iter(|| tumbler_sigv4::parse(black_box(&parts)).unwrap()));
    g.bench_function("verify", |b| {
        b.iter(|| tumbler_sigv4::verify(&auth, black_box(&parts), &r.body, &key).unwrap())
    });
    g.bench_function("derive_signing_key", |b| {
        b.iter(|| {
            SigningKey::derive(
                black_box(ORACLE_SECRET.as_bytes()),
                &auth.scope_date,
                &auth.region,
                &auth.service,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
