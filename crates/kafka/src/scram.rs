//! The client side of a SCRAM-SHA-512 login (RFC 5802) as Kafka speaks it:
//! no channel binding (`n,,`), no SASLprep, `=2C`/`=3D` in the user name.
//! Written here because the SCRAM crates on crates.io are unmaintained or
//! SHA-256 only; the primitives are tumbler-crypto's (aws-lc-rs).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tumbler_crypto::scram as math;
use tumbler_types::SensitiveString;

use crate::client::KafkaError;

/// librdkafka's ceiling: a server asking for more is not trusted.
const MAX_SERVER_ITERATIONS: u32 = 1_000_000;

pub struct ScramClient {
    password: SensitiveString,
    client_first_bare: String,
    nonce: String,
    /// After the server's first message: the AuthMessage and salted password.
    auth_message: String,
    salted: Option<tumbler_types::Sensitive>,
}

fn auth(message: impl Into<String>) -> KafkaError {
    KafkaError::Auth(message.into())
}

/// A SCRAM saslname: `=` and `,` escaped.
pub fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

impl ScramClient {
    pub fn new(user: &str, password: &SensitiveString) -> Result<Self, KafkaError> {
        let nonce = tumbler_crypto::random_bytes(24).map_err(|_| auth("no randomness for a SCRAM nonce"))?;
        // base64 has no ',' so it is a valid printable nonce.
        let nonce = B64.encode(nonce);
        Ok(ScramClient {
            password: password.clone(),
            client_first_bare: format!("n={},r={nonce}", escape_username(user)),
            nonce,
            auth_message: String::new(),
            salted: None,
        })
    }

    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client's final message (with its proof) for the server's first.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, KafkaError> {
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(auth(format!("the server refused the login: {e}")));
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(auth("the server's first SCRAM message lacks r, s or i"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(auth("the server's nonce does not extend ours"));
        }
        let salt = B64.decode(salt).map_err(|_| auth("the server's salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (1..=MAX_SERVER_ITERATIONS).contains(i))
            .ok_or_else(|| auth("the server's iteration count is not acceptable"))?;
        let salted = math::salted_password(self.password.expose().as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = math::hmac_sha512(salted.expose(), b"Client Key");
        let stored_key = math::sha512(&client_key);
        let signature = math::hmac_sha512(&stored_key, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        self.salted = Some(salted);
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check the server's signature: it proves the server knew our
    /// credential, not just that it accepted anything.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), KafkaError> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(auth(format!("the server refused the login: {e}")));
        }
        let salted = self
            .salted
            .as_ref()
            .ok_or_else(|| auth("the SCRAM exchange is out of order"))?;
        let given = server_final
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| auth("the server's final SCRAM message has no signature"))?;
        let server_key = math::hmac_sha512(salted.expose(), b"Server Key");
        let expected = math::hmac_sha512(&server_key, self.auth_message.as_bytes());
        if !math::verify_equal(&given, &expected) {
            return Err(auth("the server's SCRAM signature is wrong"));
        }
        Ok(())
    }
}

/// A new credential for `password`: a random 32-byte salt and the salted
/// password Kafka stores the keys of.
pub fn credential(user: &str, password: &str, iterations: u32) -> Result<crate::client::Upsertion, KafkaError> {
    let salt = tumbler_crypto::random_bytes(32).map_err(|_| auth("no randomness for a SCRAM salt"))?;
    let salted_password = math::salted_password(password.as_bytes(), &salt, iterations);
    Ok(crate::client::Upsertion {
        user: user.to_owned(),
        iterations,
        salt,
        salted_password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full exchange against a server built from the same math, with the
    /// server side computed independently from StoredKey/ServerKey.
    #[test]
    fn a_login_round_trip_verifies_both_ways() {
        let password = SensitiveString::new("pässword,=".into());
        let mut client = ScramClient::new("al=ice,", &password).unwrap();
        let first = client.client_first();
        assert!(first.starts_with("n,,n=al=3Dice=2C,r="));
        let cnonce = first.rsplit_once("r=").unwrap().1.to_owned();
        let salt = b"0123456789abcdef";
        let server_first = format!("r={cnonce}SERVER,s={},i=4096", B64.encode(salt));
        let client_final = client.client_final(&server_first).unwrap();

        let salted = math::salted_password(password.expose().as_bytes(), salt, 4096);
        let (stored, server_key) = math::stored_and_server_key(salted.expose());
        let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
        let auth_message = format!("{},{server_first},{without_proof}", &first[3..]);
        let signature = math::hmac_sha512(&stored, auth_message.as_bytes());
        let client_key: Vec<u8> = B64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(math::sha512(&client_key), stored, "the proof must open to StoredKey");

        let good = format!(
            "v={}",
            B64.encode(math::hmac_sha512(&server_key, auth_message.as_bytes()))
        );
        client.verify_server_final(&good).unwrap();
        assert!(client.verify_server_final("v=AAAA").is_err());
        assert!(client.verify_server_final("e=invalid-proof").is_err());
    }

    #[test]
    fn a_server_that_does_not_extend_our_nonce_is_refused() {
        let mut client = ScramClient::new("bob", &SensitiveString::new("pw".into())).unwrap();
        assert!(client.client_final("r=other,s=AAAA,i=4096").is_err());
        let cnonce = client.client_first().rsplit_once("r=").unwrap().1.to_owned();
        assert!(client.client_final(&format!("r={cnonce},s=AAAA,i=4096")).is_err());
        assert!(client.client_final(&format!("r={cnonce}x,s=AAAA,i=0")).is_err());
        assert!(client.client_final(&format!("r={cnonce}x,s=AAAA,i=99999999")).is_err());
        assert!(client.client_final(&format!("r={cnonce}x,s=!!,i=4096")).is_err());
        assert!(client.client_final("e=unknown-user").is_err());
    }
}
