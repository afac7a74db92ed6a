//! Model constraint checks with AWS's front-end wording:
//! `1 validation error detected: Value 'x' at 'secretId' failed to satisfy
//! constraint: Member must have length less than or equal to 2048`.
//! Sensitive members are reported without their value.

use crate::AwsError;

#[derive(Default)]
pub struct Validator {
    errors: Vec<String>,
}

fn shown(value: &str) -> String {
    const MAX: usize = 256;
    if value.chars().count() > MAX {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}...")
    } else {
        value.to_owned()
    }
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, member: &str, value: Option<&str>, constraint: &str) {
        let v = match value {
            Some(v) => format!("Value '{}' at", shown(v)),
            None => "Value at".to_owned(),
        };
        self.errors.push(format!(
            "{v} '{member}' failed to satisfy constraint: Member must {constraint}"
        ));
    }

    pub fn required<T>(&mut self, member: &str, value: &Option<T>) {
        if value.is_none() {
            self.errors.push(format!(
                "Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ));
        }
    }

    /// String length in characters.
    pub fn length(&mut self, member: &str, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value {
            let n = v.chars().count();
            self.check_len(member, Some(v), n, min, max);
        }
    }

    /// Length of a sensitive value in bytes (the secret quota is in bytes);
    /// the value is never shown.
    pub fn sensitive_length(&mut self, member: &str, len: Option<usize>, min: usize, max: usize) {
        if let Some(n) = len {
            self.check_len(member, None, n, min, max);
        }
    }

    fn check_len(&mut self, member: &str, shown: Option<&str>, n: usize, min: usize, max: usize) {
        if n < min {
            self.fail(member, shown, &format!("have length greater than or equal to {min}"));
        } else if n > max {
            self.fail(member, shown, &format!("have length less than or equal to {max}"));
        }
    }

    pub fn list_length<T>(
        &mut self,
        member: &str,
        list: Option<&[T]>,
        min: usize,
        max: usize,
        show: impl Fn(&[T]) -> String,
    ) {
        if let Some(l) = list
            && (l.len() < min || l.len() > max)
        {
            let s = show(l);
            self.check_len(member, Some(&s), l.len(), min, max);
        }
    }

    pub fn range(&mut self, member: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            let s = v.to_string();
            if v < min {
                self.fail(member, Some(&s), &format!("have value greater than or equal to {min}"));
            } else if v > max {
                self.fail(member, Some(&s), &format!("have value less than or equal to {max}"));
            }
        }
    }

    pub fn pattern(
        &mut self,
        member: &str,
        value: Option<&str>,
        ok: impl Fn(&str) -> bool,
        pattern: &str,
        sensitive: bool,
    ) {
        if let Some(v) = value
            && !ok(v)
        {
            let shown = if sensitive { None } else { Some(v) };
            self.fail(member, shown, &format!("satisfy regular expression pattern: {pattern}"));
        }
    }

    pub fn one_of(&mut self, member: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.fail(
                member,
                Some(v),
                &format!("satisfy enum value set: [{}]", allowed.join(", ")),
            );
        }
    }

    pub fn finish(self) -> Result<(), AwsError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(AwsError::validation(format!(
                "1 validation error detected: {}",
                self.errors[0]
            ))),
            n => Err(AwsError::validation(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coral_wording() {
        let mut v = Validator::new();
        v.range("passwordLength", Some(5555), 1, 4096);
        assert_eq!(
            v.finish().unwrap_err().message,
            "1 validation error detected: Value '5555' at 'passwordLength' failed to satisfy constraint: Member must have value less than or equal to 4096"
        );
        let mut v = Validator::new();
        v.sensitive_length("secretBinary", Some(70000), 1, 65536);
        v.required::<String>("secretId", &None);
        let m = v.finish().unwrap_err().message;
        assert!(
            m.starts_with("2 validation errors detected: Value at 'secretBinary'"),
            "{m}"
        );
        assert!(m.contains("Value null at 'secretId'"));
    }
}
