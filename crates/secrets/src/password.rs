//! GetRandomPassword: AWS's character classes and defaults, drawn from the
//! system CSPRNG without modulo bias.

use tumbler_types::SensitiveString;
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager::GetRandomPasswordRequest;

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
/// All 32 ASCII punctuation characters.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

#[derive(Clone, Debug)]
pub struct Rules {
    pub length: usize,
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    pub include_space: bool,
    pub require_each_included_type: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

impl Rules {
    pub fn from_request(r: &GetRandomPasswordRequest) -> Self {
        let d = Rules::default();
        Self {
            length: r.password_length.map(|n| n as usize).unwrap_or(d.length),
            exclude_characters: r.exclude_characters.clone().unwrap_or_default(),
            exclude_numbers: r.exclude_numbers.unwrap_or(false),
            exclude_punctuation: r.exclude_punctuation.unwrap_or(false),
            exclude_uppercase: r.exclude_uppercase.unwrap_or(false),
            exclude_lowercase: r.exclude_lowercase.unwrap_or(false),
            include_space: r.include_space.unwrap_or(false),
            require_each_included_type: r.require_each_included_type.unwrap_or(true),
        }
    }
}

fn random_below(n: usize) -> Result<usize, AwsError> {
    // Rejection sampling over u32 keeps every index equally likely.
    let n32 = n as u32;
    let zone = u32::MAX - (u32::MAX % n32);
    loop {
        let b =
            tumbler_crypto::random_bytes(4).map_err(|_| AwsError::internal("The random number generator failed."))?;
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if v < zone {
            return Ok((v % n32) as usize);
        }
    }
}

pub fn generate(rules: &Rules) -> Result<SensitiveString, AwsError> {
    let mut classes: Vec<Vec<char>> = Vec::new();
    for (set, excluded) in [
        (LOWER, rules.exclude_lowercase),
        (UPPER, rules.exclude_uppercase),
        (DIGITS, rules.exclude_numbers),
        (PUNCTUATION, rules.exclude_punctuation),
        (" ", !rules.include_space),
    ] {
        if excluded {
            continue;
        }
        let chars: Vec<char> = set.chars().filter(|c| !rules.exclude_characters.contains(*c)).collect();
        if !chars.is_empty() {
            classes.push(chars);
        }
    }
    if classes.is_empty() {
        return Err(AwsError::invalid_parameter(
            "The password can't be generated: every character type is excluded.",
        ));
    }
    if rules.require_each_included_type && rules.length < classes.len() {
        return Err(AwsError::invalid_parameter(
            "Password length is too short based on the required types.",
        ));
    }
    let all: Vec<char> = classes.iter().flatten().copied().collect();
    let mut out: Vec<char> = Vec::with_capacity(rules.length);
    if rules.require_each_included_type {
        for class in &classes {
            out.push(class[random_below(class.len())?]);
        }
    }
    while out.len() < rules.length {
        out.push(all[random_below(all.len())?]);
    }
    // Shuffle (Fisher-Yates) so the required characters are not in front.
    for i in (1..out.len()).rev() {
        let j = random_below(i + 1)?;
        out.swap(i, j);
    }
    Ok(SensitiveString::new(out.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_classes() {
        let p = generate(&Rules::default()).unwrap();
        let p = p.expose();
        assert_eq!(p.chars().count(), 32);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| c.is_ascii_punctuation()));
        assert!(!p.contains(' '));
    }

    #[test]
    fn exclusions_and_errors() {
        let r = Rules {
            length: 200,
            exclude_characters: ":/@\"'\\".into(),
            exclude_punctuation: false,
            include_space: true,
            ..Default::default()
        };
        let p = generate(&r).unwrap();
        assert!(!p.expose().chars().any(|c| ":/@\"'\\".contains(c)));
        assert!(p.expose().contains(' '));
        let r = Rules {
            length: 3,
            ..Default::default()
        };
        assert_eq!(generate(&r).unwrap_err().code, "InvalidParameterException");
        let r = Rules {
            length: 3,
            require_each_included_type: false,
            ..Default::default()
        };
        assert_eq!(generate(&r).unwrap().len(), 3);
        let r = Rules {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..Default::default()
        };
        assert!(generate(&r).is_err());
        let r = Rules {
            exclude_numbers: true,
            exclude_punctuation: true,
            length: 64,
            ..Default::default()
        };
        assert!(generate(&r).unwrap().expose().chars().all(|c| c.is_ascii_alphabetic()));
    }
}
