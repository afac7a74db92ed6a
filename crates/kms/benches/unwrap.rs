//! The per-request cost of a data key in GetSecretValue: unwrapping it
//! (key state check, AES-GCM open under the cached KMS key material) and
//! preparing it for AES-GCM, against the prepared-key cache that
//! GetSecretValue uses. BENCHMARKS.md records the numbers.
//!
//!     cargo bench -j2 -p tumbler-kms --bench unwrap -- --quick

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tumbler_crypto::{Kek, MasterKey};
use tumbler_kms::Kms;

const CONTEXT: &[(&str, &str)] = &[
    (
        "SecretARN",
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-AbCdEf",
    ),
    ("SecretVersionId", "0b8f2d6c-3a1e-4f7b-9c2d-5e6f7a8b9c0d"),
];

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("tumbler-kms-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(tumbler_store::SqliteStore::open(&dir.join("s.db")).unwrap());
    let kms = Kms::new(store, &MasterKey::from_bytes(&[9; 32]).unwrap());
    let key = kms.default_secrets_key("000000000000", "us-east-1").unwrap();
    let data_key = tumbler_crypto::generate_key().unwrap();
    let blob = kms.wrap(&key, &data_key, CONTEXT).unwrap();
    // Warm the key material cache: the first use per key opens it once.
    kms.unwrap(&blob, CONTEXT).unwrap();

    let mut g = c.benchmark_group("data_key");
    g.bench_function("wrap", |b| {
        b.iter(|| kms.wrap(&key, black_box(&data_key), CONTEXT).unwrap())
    });
    g.bench_function("unwrap_and_prepare_uncached", |b| {
        b.iter(|| {
            let plain = kms.unwrap(black_box(&blob), CONTEXT).unwrap();
            Kek::new(plain.expose()).unwrap()
        })
    });
    g.bench_function("unwrap_prepared_cached", |b| {
        b.iter(|| kms.unwrap_prepared(black_box(&blob), CONTEXT).unwrap())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
