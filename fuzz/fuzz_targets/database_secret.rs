//! Arbitrary text as a database secret value (what AWS's rotation
//! templates read, and Tumbler's database rotators after them): parsing
//! never panics, a refusal says why, and neither a refusal nor the parsed
//! secret's Debug ever shows the password. A secret that parses writes a
//! next version that parses again, with the new credentials and every
//! other field kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_databases::secret::{DbSecret, Engine};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The password, when it is distinctive enough that its appearance
    // elsewhere would be a leak and not a coincidence.
    let password = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("password")?.as_str().map(str::to_owned))
        .filter(|p| p.len() >= 12 && text.matches(p.as_str()).count() == 1);
    for engine in [Engine::Postgres, Engine::MySql] {
        match DbSecret::parse(&text, "AWSCURRENT", engine) {
            Ok(secret) => {
                if let Some(p) = &password {
                    assert!(!format!("{secret:?}").contains(p.as_str()), "Debug shows the password");
                }
                let next = secret.with_credentials("someone_clone", "new-password-0123");
                let again = DbSecret::parse(&next, "AWSPENDING", engine).expect("a written version parses");
                assert_eq!(again.username, "someone_clone");
                assert_eq!(again.password.expose(), "new-password-0123");
                assert_eq!((again.host.as_str(), again.port), (secret.host.as_str(), secret.port));
                assert_eq!(again.dbname, secret.dbname);
                assert_eq!(again.ssl, secret.ssl);
                let _ = DbSecret::parse_admin(&text, &secret);
            }
            Err(e) => {
                assert!(e.0.starts_with("the AWSCURRENT secret value: "), "{}", e.0);
                if let Some(p) = &password {
                    assert!(!e.0.contains(p.as_str()), "a refusal shows the password: {}", e.0);
                }
            }
        }
    }
});
