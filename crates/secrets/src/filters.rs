//! ListSecrets / BatchGetSecretValue filters, as AWS applies them:
//! values within a filter are ORed, filters are ANDed, a leading `!`
//! negates a value. `name`, `tag-key`, `tag-value`, `primary-region` and
//! `owning-service` are case-sensitive prefix matches; `description` and
//! `all` match words, case-insensitively (verified AWS behaviour; see
//! ../shared/reference/aws-secrets-manager.md §3.8).

use tumbler_store::SecretRow;
use tumbler_wire::AwsError;
use tumbler_wire::secretsmanager::Filter;

use crate::meta::SecretMeta;

pub struct Compiled {
    key: String,
    positive: Vec<String>,
    negative: Vec<String>,
}

pub fn compile(filters: &[Filter]) -> Result<Vec<Compiled>, AwsError> {
    filters
        .iter()
        .map(|f| {
            let key = f
                .key
                .clone()
                .ok_or_else(|| AwsError::invalid_parameter("Invalid filter key"))?;
            let values = f
                .values
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AwsError::invalid_parameter(format!("Invalid filter values for key: {key}")))?;
            let (negative, positive): (Vec<_>, Vec<_>) = values.into_iter().partition(|v| v.starts_with('!'));
            Ok(Compiled {
                key,
                positive,
                negative: negative.into_iter().map(|v| v[1..].to_owned()).collect(),
            })
        })
        .collect()
}

pub fn matches(filters: &[Compiled], row: &SecretRow, meta: &SecretMeta) -> bool {
    filters.iter().all(|f| {
        let hit = |v: &str| value_matches(&f.key, v, row, meta);
        (f.positive.is_empty() || f.positive.iter().any(|v| hit(v))) && !f.negative.iter().any(|v| hit(v))
    })
}

fn value_matches(key: &str, value: &str, row: &SecretRow, meta: &SecretMeta) -> bool {
    let tags = meta.tags.as_deref().unwrap_or_default();
    match key {
        "name" => row.name.starts_with(value),
        "tag-key" => tags.iter().any(|t| t.key.starts_with(value)),
        "tag-value" => tags.iter().any(|t| t.value.starts_with(value)),
        "primary-region" => meta.primary_region.as_deref().is_some_and(|r| r.starts_with(value)),
        "owning-service" => meta.owning_service.as_deref().is_some_and(|s| s.starts_with(value)),
        "description" => words_match(value, &[meta.description.as_deref().unwrap_or_default()]),
        "all" => {
            let mut fields: Vec<&str> = vec![&row.name];
            fields.extend(meta.description.as_deref());
            fields.extend(meta.primary_region.as_deref());
            fields.extend(meta.owning_service.as_deref());
            for t in tags {
                fields.push(&t.key);
                fields.push(&t.value);
            }
            words_match(value, &fields)
        }
        _ => false,
    }
}

/// Every word of `value`, split like the fields are, must be a
/// case-insensitive prefix of some token of some field. A value with no word
/// characters matches nothing.
fn words_match(value: &str, fields: &[&str]) -> bool {
    let words: Vec<String> = tokens(value).into_iter().map(|w| w.to_lowercase()).collect();
    if words.is_empty() {
        return false;
    }
    let tokens: Vec<String> = fields
        .iter()
        .flat_map(|f| tokens(f))
        .map(|t| t.to_lowercase())
        .collect();
    words.iter().all(|w| tokens.iter().any(|t| t.starts_with(w.as_str())))
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || "/-_+=.@:!".contains(c)
}

fn split_words(s: &str) -> Vec<&str> {
    s.split(is_separator).filter(|w| !w.is_empty()).collect()
}

/// Tokens: separator-delimited segments split at case changes (`AppBeta` ->
/// `App`, `Beta`; `COMPANYthings` -> `COMPAN`, `Ythings`) and letter/digit
/// boundaries.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for seg in split_words(s) {
        let chars: Vec<char> = seg.chars().collect();
        let mut start = 0;
        for i in 1..chars.len() {
            let (a, b) = (chars[i - 1], chars[i]);
            let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
            let boundary = (a.is_lowercase() && b.is_uppercase())
                || (a.is_uppercase() && b.is_uppercase() && next_lower)
                || (a.is_alphabetic() != b.is_alphabetic());
            if boundary {
                out.push(chars[start..i].iter().collect());
                start = i;
            }
        }
        out.push(chars[start..].iter().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> SecretRow {
        SecretRow {
            id: 1,
            account: String::new(),
            region: String::new(),
            name: name.into(),
            arn: String::new(),
            revision: 1,
            created_ms: 0,
            last_changed_ms: 0,
            last_accessed_ms: None,
            deleted_ms: None,
            purge_at_ms: None,
            meta: String::new(),
        }
    }
    fn f(key: &str, values: &[&str]) -> Vec<Compiled> {
        compile(&[Filter {
            key: Some(key.into()),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }])
        .unwrap()
    }

    #[test]
    fn all_tokenises_like_aws() {
        let m = SecretMeta::default();
        assert!(matches(&f("all", &["AppBeta"]), &row("prod/AppBeta/x"), &m));
        assert!(matches(&f("all", &["Beta"]), &row("prod/AppBeta/x"), &m));
        assert!(matches(&f("all", &["Ythings"]), &row("uat/COMPANYthings/x"), &m));
        assert!(!matches(&f("all", &["things"]), &row("uat/COMPANYthings/x"), &m));
        assert!(!matches(&f("all", &["N"]), &row("uat/COMPANYthings/x"), &m));
        assert!(!matches(&f("all", &["company"]), &row("uat/COMPANYthings/x"), &m));
        assert!(matches(&f("all", &["company"]), &row("uat/COMPANY/x"), &m));
        assert!(!matches(&f("all", &["+"]), &row("a+b"), &m));
    }

    #[test]
    fn description_words_and_negation() {
        let mut m = SecretMeta {
            description: Some("one two".into()),
            ..Default::default()
        };
        assert!(matches(&f("description", &["one two"]), &row("x"), &m));
        assert!(matches(&f("description", &["t"]), &row("x"), &m));
        assert!(matches(&f("description", &["TWO"]), &row("x"), &m));
        assert!(!matches(&f("description", &["three"]), &row("x"), &m));
        m.description = Some("three".into());
        assert!(matches(&f("description", &["!one"]), &row("x"), &m));
        assert!(matches(&f("name", &["x", "y"]), &row("yes"), &m));
        assert!(!matches(&f("name", &["!y"]), &row("yes"), &m));
        assert!(!matches(&f("name", &["Y"]), &row("yes"), &m));
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(
            compile(&[Filter {
                key: None,
                values: Some(vec!["a".into()])
            }])
            .is_err()
        );
        assert!(
            compile(&[Filter {
                key: Some("name".into()),
                values: None
            }])
            .is_err()
        );
    }
}
