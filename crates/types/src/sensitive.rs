//! A wrapper for secret material: redacted in Debug/Display, zeroized on drop,
//! compared in constant time. It implements no `Serialize`, so a secret can
//! only reach a wire response or a log through an explicit `expose()`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Secret bytes (a data key, a plaintext secret value, an access key secret).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Sensitive(Vec<u8>);

impl Sensitive {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Sensitive {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl PartialEq for Sensitive {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Sensitive {}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

/// A secret text value (a SecretString, a password).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SensitiveString(String);

impl SensitiveString {
    pub fn new(s: String) -> Self {
        Self(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SensitiveString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl PartialEq for SensitiveString {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for SensitiveString {}

impl fmt::Debug for SensitiveString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SensitiveString(<redacted>)")
    }
}
impl fmt::Display for SensitiveString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts() {
        let s = SensitiveString::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "SensitiveString(<redacted>) <redacted>");
        let b = Sensitive::new(b"k".to_vec());
        assert!(!format!("{b:?}").contains('k'));
        assert_eq!(b, Sensitive::new(b"k".to_vec()));
    }
}
