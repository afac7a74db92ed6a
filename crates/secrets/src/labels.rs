//! How staging labels move. Pure functions over a label map
//! (stage -> version id), so every rule is unit-tested without a store.
//!
//! AWS's rules: a label is on at most one version; moving AWSCURRENT moves
//! AWSPREVIOUS onto the version it left; a version without labels is
//! deprecated; at most 20 distinct labels per secret.

use std::collections::BTreeMap;

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
pub const PENDING: &str = "AWSPENDING";
pub const MAX_LABELS: usize = 20;

/// stage -> version id.
pub type Labels = BTreeMap<String, String>;

/// Attach `stages` to `version`, taking them from wherever they are.
/// `implicit_current`: the move comes from PutSecretValue/UpdateSecret, where
/// AWS also drops AWSPENDING from the version that loses AWSCURRENT.
pub fn attach(labels: &mut Labels, version: &str, stages: &[String], implicit_current: bool) {
    for stage in stages {
        let old = labels.insert(stage.clone(), version.to_owned());
        if stage == CURRENT
            && let Some(old) = old.filter(|o| o != version)
        {
            labels.insert(PREVIOUS.to_owned(), old.clone());
            if implicit_current && labels.get(PENDING) == Some(&old) {
                labels.remove(PENDING);
            }
        }
    }
}

/// The labels on `version`, sorted (AWS sorts them in responses).
pub fn of(labels: &Labels, version: &str) -> Vec<String> {
    labels
        .iter()
        .filter(|(_, v)| *v == version)
        .map(|(s, _)| s.clone())
        .collect()
}

/// version id -> its sorted labels, for labelled versions only.
pub fn by_version(labels: &Labels) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (stage, v) in labels {
        out.entry(v.clone()).or_default().push(stage.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(s, v)| (s.to_string(), v.to_string())).collect()
    }
    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn current_moves_previous_along() {
        let mut m = l(&[("AWSCURRENT", "v1")]);
        attach(&mut m, "v2", &s(&["AWSCURRENT"]), true);
        assert_eq!(m, l(&[("AWSCURRENT", "v2"), ("AWSPREVIOUS", "v1")]));
        attach(&mut m, "v3", &s(&["AWSCURRENT"]), true);
        // v1 lost AWSPREVIOUS and is now deprecated.
        assert_eq!(m, l(&[("AWSCURRENT", "v3"), ("AWSPREVIOUS", "v2")]));
        assert!(of(&m, "v1").is_empty());
    }

    #[test]
    fn implicit_current_drops_pending_from_old_current_but_keeps_custom() {
        let mut m = l(&[("AWSCURRENT", "v2"), ("AWSPENDING", "v2"), ("custom", "v2")]);
        attach(&mut m, "v3", &s(&["AWSCURRENT"]), true);
        assert_eq!(of(&m, "v2"), s(&["AWSPREVIOUS", "custom"]));
    }

    #[test]
    fn non_current_labels_are_stolen() {
        // AWS: putting ["one","two","four"] when v2 has ["one","three","two"] leaves v2 with ["three"].
        let mut m = l(&[("AWSCURRENT", "v1"), ("one", "v2"), ("three", "v2"), ("two", "v2")]);
        attach(&mut m, "v3", &s(&["one", "two", "four"]), true);
        assert_eq!(of(&m, "v2"), s(&["three"]));
        assert_eq!(of(&m, "v3"), s(&["four", "one", "two"]));
        assert_eq!(of(&m, "v1"), s(&["AWSCURRENT"]));
    }

    #[test]
    fn reattaching_current_to_its_own_version_is_a_no_op() {
        let mut m = l(&[("AWSCURRENT", "v1"), ("AWSPREVIOUS", "v0")]);
        attach(&mut m, "v1", &s(&["AWSCURRENT"]), true);
        assert_eq!(m, l(&[("AWSCURRENT", "v1"), ("AWSPREVIOUS", "v0")]));
    }
}
