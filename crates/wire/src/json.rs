//! awsJson1_1 request decoding. Errors name the member that was wrong and
//! never echo the value it held (it may be a secret).

use serde::de::DeserializeOwned;

use crate::AwsError;

/// Decode a request body. An empty body counts as `{}` (some clients send
/// nothing for operations without input).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // The fast path; tracking the path costs on every member, so it only runs
    // again to word an error.
    if let Ok(v) = serde_json::from_slice(body) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = redact_quoted(&inner.to_string());
        if inner.is_data() && path != "." {
            AwsError::serialization(format!("Invalid value for member '{path}': {what}"))
        } else {
            AwsError::serialization(format!("The request body is not a valid JSON object: {what}"))
        }
    })?;
    Ok(value)
}

/// serde_json quotes offending values (`invalid type: string "x", ...`);
/// drop them so a misplaced secret never travels back in an error or log.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut in_quote = false;
    let mut chars = msg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '`' if !in_quote => {
                in_quote = true;
                out.push_str("<value>");
            }
            '"' | '`' if in_quote => in_quote = false,
            '\\' if in_quote => {
                chars.next();
            }
            _ if in_quote => {}
            _ => out.push(c),
        }
    }
    out
}

/// Append `s` as a JSON string, exactly as serde_json writes it (tests hold
/// it to that). serde_json checks a string for escapes one byte at a time
/// through a table; this checks the whole string without an early exit,
/// which the compiler vectorises, and hands the rare string that needs
/// escaping to serde_json. The hottest responses and every audit event are
/// mostly such strings.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let clean = s
        .bytes()
        .fold(true, |clean, b| clean & (b >= 0x20) & (b != b'"') & (b != b'\\'));
    if clean {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Serialize a response body; our response types cannot fail to serialize.
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Most responses (a secret value with its ARN, id and labels) fit in
    // this without growing the buffer.
    let mut out = Vec::with_capacity(512);
    match serde_json::to_writer(&mut out, value) {
        Ok(()) => out,
        Err(_) => b"{}".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    #[serde(rename_all = "PascalCase")]
    struct T {
        secret_id: Option<String>,
        tags: Option<Vec<String>>,
    }

    #[test]
    fn errors_name_the_member_not_the_value() {
        let e = decode::<T>(br#"{"SecretId": 5}"#).unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(e.message.contains("SecretId"), "{}", e.message);
        let e = decode::<T>(br#"{"Tags": "hunter2"}"#).unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
        let e = decode::<T>(b"{not json").unwrap_err();
        assert_eq!(e.code, "SerializationException");
        let e = decode::<T>(b"[1]").unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert!(decode::<T>(b"").is_ok());
        assert!(decode::<T>(br#"{"Unknown": 1}"#).is_ok());
    }
}
