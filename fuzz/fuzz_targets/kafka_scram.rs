//! What a Kafka sync reads from outside: a SCRAM secret's value (written by
//! anyone who may PutSecretValue), a broker's SCRAM messages (a broker
//! Tumbler was pointed at may be hostile), and MSK's REST paths. None may
//! panic; a refused secret never echoes its password; a hostile server's
//! first message never yields a final message without our nonce, and its
//! final message is never accepted without the right signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tumbler_kafka::scram::ScramClient;
use tumbler_kafka::secret::ScramSecret;
use tumbler_types::SensitiveString;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 3 {
        0 => {
            let password = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("password")?.as_str().map(str::to_owned))
                .filter(|p| p.len() >= 12 && text.matches(p.as_str()).count() == 1);
            match ScramSecret::parse(&text) {
                Ok(secret) => {
                    assert!(tumbler_kafka::secret::valid_username(&secret.username));
                    assert!(!secret.password.is_empty());
                }
                Err(e) => {
                    if let Some(p) = &password {
                        assert!(!e.contains(p.as_str()), "a refusal shows the password: {e}");
                    }
                }
            }
        }
        1 => {
            let mut client = ScramClient::new("alice", &SensitiveString::new("pw".into())).expect("a client");
            let first = client.client_first();
            let nonce = first.rsplit_once("r=").map(|(_, n)| n.to_owned()).unwrap_or_default();
            // Half the time the server's message starts with our nonce, so
            // the exchange goes deeper.
            let server_first = if rest.first().is_some_and(|b| b & 1 == 1) {
                format!("r={nonce}{text}")
            } else {
                text.to_string()
            };
            if let Ok(client_final) = client.client_final(&server_first) {
                assert!(client_final.starts_with("c=biws,r="));
                assert!(client_final.contains(&nonce), "the final message lost our nonce");
                assert!(client.verify_server_final(&text).is_err(), "accepted an unsigned final message");
            }
        }
        _ => {
            for method in [http::Method::GET, http::Method::POST, http::Method::PATCH, http::Method::DELETE] {
                if let Some(Ok((op, _))) = tumbler_kafka::service::route_rest(&method, &text) {
                    assert!(text.starts_with("/v1/clusters/"), "{op} routed from {text}");
                }
            }
        }
    }
});
