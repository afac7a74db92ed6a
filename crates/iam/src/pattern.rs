//! Wildcard patterns and policy-variable templates, compiled once when a
//! policy is parsed so that matching needs no parsing and no allocation
//! (beyond patterns with more than `INLINE_SEGMENTS` pieces).

use crate::context::{ContextKeys, KeyName};

/// How a pattern's text is read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (Action, Resource, StringLike, ArnLike).
    pub wildcards: bool,
    /// `${...}` is a policy variable (Version 2012-10-17 only).
    pub variables: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Piece {
    Literal(Box<str>),
    Star,
    Question,
    Variable(Variable),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Variable {
    pub key: KeyName,
    pub default: Option<Box<str>>,
}

#[derive(Clone, Debug)]
enum Shape {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// Literals and variables only: compared piece by piece.
    Template(Vec<Piece>),
    General(Vec<Piece>),
}

/// A compiled pattern. `source` keeps the text as written, for explanations.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    source: Box<str>,
    shape: Shape,
}

#[derive(Clone, Copy, Debug)]
enum Segment<'a> {
    Literal(&'a str),
    Star,
    Question,
}

const INLINE_SEGMENTS: usize = 10;

impl Pattern {
    /// `fold_case` lower-cases literals so that they can be compared with
    /// ASCII case folding (actions are case-insensitive, and ASCII).
    pub fn compile(text: &str, syntax: Syntax, fold_case: bool) -> Pattern {
        let mut pieces = tokenize(text, syntax);
        if fold_case {
            for piece in &mut pieces {
                if let Piece::Literal(lit) = piece {
                    *lit = lit.to_ascii_lowercase().into();
                }
            }
        }
        Pattern::from_pieces(text.into(), pieces)
    }

    fn from_pieces(source: Box<str>, mut pieces: Vec<Piece>) -> Pattern {
        let wildcard_free = !pieces.iter().any(|p| matches!(p, Piece::Star | Piece::Question));
        let shape = match pieces.as_mut_slice() {
            [] => Shape::Exact("".into()),
            [Piece::Star] => Shape::Any,
            [Piece::Literal(lit)] => Shape::Exact(std::mem::take(lit)),
            [Piece::Literal(lit), Piece::Star] => Shape::Prefix(std::mem::take(lit)),
            [Piece::Star, Piece::Literal(lit)] => Shape::Suffix(std::mem::take(lit)),
            _ if wildcard_free => Shape::Template(pieces),
            _ => Shape::General(pieces),
        };
        Pattern { source, shape }
    }

    /// Splits an ARN pattern into its six colon-separated parts (the last
    /// keeps any further colons), never splitting inside `${...}`. Fewer than
    /// six parts gives `None`.
    pub fn compile_arn_parts(text: &str, syntax: Syntax) -> Option<Vec<Pattern>> {
        let mut parts: Vec<Vec<Piece>> = vec![Vec::new()];
        for piece in tokenize(text, syntax) {
            match piece {
                Piece::Literal(lit) if parts.len() < 6 && lit.contains(':') => {
                    let mut rest: &str = &lit;
                    while let Some(at) = rest.find(':').filter(|_| parts.len() < 6) {
                        push_literal(parts.last_mut()?, &rest[..at]);
                        parts.push(Vec::new());
                        rest = &rest[at + 1..];
                    }
                    push_literal(parts.last_mut()?, rest);
                }
                other => parts.last_mut()?.push(other),
            }
        }
        if parts.len() < 6 {
            return None;
        }
        Some(
            parts
                .into_iter()
                .map(|pieces| Pattern::from_pieces("".into(), pieces))
                .collect(),
        )
    }

    /// Matching costs a comparison or two: no variables, no inner wildcards.
    pub fn is_cheap(&self) -> bool {
        !matches!(self.shape, Shape::Template(_) | Shape::General(_))
    }

    pub fn has_variables(&self) -> bool {
        match &self.shape {
            Shape::Template(pieces) | Shape::General(pieces) => pieces.iter().any(|p| matches!(p, Piece::Variable(_))),
            _ => false,
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Wildcard match; `fold_case` compares ASCII letters case-insensitively
    /// (the pattern was compiled with `fold_case`). Unresolvable variables
    /// never match. The common shapes are inlined; the rest is out of line.
    #[inline]
    pub fn matches(&self, text: &str, fold_case: bool, keys: &ContextKeys) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if fold_case {
                a.eq_ignore_ascii_case(b)
            } else {
                bytes_eq(a, b)
            }
        };
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(lit) => eq(text.as_bytes(), lit.as_bytes()),
            Shape::Prefix(lit) => text.len() >= lit.len() && eq(&text.as_bytes()[..lit.len()], lit.as_bytes()),
            Shape::Suffix(lit) => {
                text.len() >= lit.len() && eq(&text.as_bytes()[text.len() - lit.len()..], lit.as_bytes())
            }
            Shape::Template(pieces) => template_matches(pieces, text, fold_case, keys),
            Shape::General(pieces) => with_segments(pieces, keys, |segments| glob(segments, text, fold_case)),
        }
    }

    /// Whole-string equality ignoring case (Unicode lower-casing), for
    /// `StringEqualsIgnoreCase` and `Bool`. Wildcards are not read here.
    pub fn equals_ignoring_case(&self, text: &str, keys: &ContextKeys) -> bool {
        match &self.shape {
            Shape::Exact(lit) => eq_ignore_case(std::iter::once(&**lit), text),
            Shape::Any => eq_ignore_case(std::iter::once("*"), text),
            Shape::Prefix(lit) => eq_ignore_case([&**lit, "*"].into_iter(), text),
            Shape::Suffix(lit) => eq_ignore_case(["*", &**lit].into_iter(), text),
            Shape::Template(pieces) | Shape::General(pieces) => with_segments(pieces, keys, |segments| {
                let texts = segments.iter().map(|s| match s {
                    Segment::Literal(lit) => *lit,
                    Segment::Star => "*",
                    Segment::Question => "?",
                });
                eq_ignore_case(texts, text)
            }),
        }
    }
}

#[inline(never)]
fn template_matches(pieces: &[Piece], text: &str, fold_case: bool, keys: &ContextKeys) -> bool {
    let mut rest = text.as_bytes();
    for piece in pieces {
        let part = match piece {
            Piece::Literal(lit) => lit,
            Piece::Variable(var) => match keys.variable(&var.key).or(var.default.as_deref()) {
                Some(value) => value,
                None => return false,
            },
            Piece::Star | Piece::Question => return false,
        };
        let same = |head: &[u8]| {
            if fold_case {
                head.eq_ignore_ascii_case(part.as_bytes())
            } else {
                bytes_eq(head, part.as_bytes())
            }
        };
        match rest.split_at_checked(part.len()) {
            Some((head, tail)) if same(head) => rest = tail,
            _ => return false,
        }
    }
    rest.is_empty()
}

/// Byte equality without a call into libc: the strings compared here are
/// short, and a `memcmp` call costs more than the comparison.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        let x = u64::from_ne_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_ne_bytes(y.try_into().unwrap_or([0; 8]));
        if x != y {
            return false;
        }
    }
    wa.remainder().iter().zip(wb.remainder()).all(|(x, y)| x == y)
}

/// Runs `f` with `text` lower-cased (ASCII), on the stack when it is short.
pub(crate) fn with_ascii_lowercase<R>(text: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buffer = [0u8; 128];
    if let Some(slot) = buffer.get_mut(..text.len()) {
        slot.copy_from_slice(text.as_bytes());
        slot.make_ascii_lowercase();
        if let Ok(lower) = std::str::from_utf8(slot) {
            return f(lower);
        }
    }
    f(&text.to_ascii_lowercase())
}

fn push_literal(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Literal(text.into()));
    }
}

fn eq_ignore_case<'a>(parts: impl Iterator<Item = &'a str> + Clone, text: &str) -> bool {
    if text.is_ascii() && parts.clone().all(str::is_ascii) {
        let mut rest = text.as_bytes();
        for part in parts {
            let Some((head, tail)) = rest.split_at_checked(part.len()) else {
                return false;
            };
            if !head.eq_ignore_ascii_case(part.as_bytes()) {
                return false;
            }
            rest = tail;
        }
        return rest.is_empty();
    }
    parts
        .flat_map(str::chars)
        .flat_map(char::to_lowercase)
        .eq(text.chars().flat_map(char::to_lowercase))
}

/// Resolves variables and hands the segments to `f`; false if a variable
/// cannot be resolved.
#[inline(never)]
fn with_segments(pieces: &[Piece], keys: &ContextKeys, f: impl FnOnce(&[Segment<'_>]) -> bool) -> bool {
    fn resolve<'a>(piece: &'a Piece, keys: &'a ContextKeys) -> Option<Segment<'a>> {
        Some(match piece {
            Piece::Literal(lit) => Segment::Literal(lit),
            Piece::Star => Segment::Star,
            Piece::Question => Segment::Question,
            Piece::Variable(var) => Segment::Literal(keys.variable(&var.key).or(var.default.as_deref())?),
        })
    }
    if pieces.len() <= INLINE_SEGMENTS {
        let mut inline = [Segment::Star; INLINE_SEGMENTS];
        for (slot, piece) in inline.iter_mut().zip(pieces) {
            let Some(segment) = resolve(piece, keys) else {
                return false;
            };
            *slot = segment;
        }
        f(&inline[..pieces.len()])
    } else {
        let Some(segments) = pieces.iter().map(|p| resolve(p, keys)).collect::<Option<Vec<_>>>() else {
            return false;
        };
        f(&segments)
    }
}

/// Glob match of `*` (any run, including empty) and `?` (one character).
/// The pattern is split at its stars: the first group is anchored at the
/// start, the last at the end, and the ones between take their leftmost
/// match, which is always safe because `?` has a fixed length.
fn glob(segments: &[Segment<'_>], text: &str, fold_case: bool) -> bool {
    let stars = segments.iter().filter(|s| matches!(s, Segment::Star)).count();
    let mut groups = segments.split(|s| matches!(s, Segment::Star));
    let first = groups.next().unwrap_or(&[]);
    let Some(mut pos) = match_group(first, text, 0, fold_case) else {
        return false;
    };
    if stars == 0 {
        return pos == text.len();
    }
    for (index, group) in groups.enumerate() {
        let last = index + 1 == stars;
        if group.is_empty() {
            if last {
                return true;
            }
            continue;
        }
        if last {
            if let Some(width) = fixed_width(group) {
                let Some(start) = text.len().checked_sub(width).filter(|s| *s >= pos) else {
                    return false;
                };
                return text.is_char_boundary(start) && match_group(group, text, start, fold_case) == Some(text.len());
            }
            return (pos..=text.len())
                .filter(|s| text.is_char_boundary(*s))
                .any(|s| match_group(group, text, s, fold_case) == Some(text.len()));
        }
        let found = match (group[0], fold_case) {
            // Only try starts where the group's first literal byte is.
            (Segment::Literal(lit), false) if !lit.is_empty() => {
                let first = lit.as_bytes()[0];
                text.as_bytes()[pos..]
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == first)
                    .find_map(|(at, _)| match_group(group, text, pos + at, fold_case))
            }
            _ => (pos..=text.len())
                .filter(|s| text.is_char_boundary(*s))
                .find_map(|s| match_group(group, text, s, fold_case)),
        };
        match found {
            Some(end) => pos = end,
            None => return false,
        }
    }
    true
}

fn fixed_width(group: &[Segment<'_>]) -> Option<usize> {
    group.iter().try_fold(0, |width, s| match s {
        Segment::Literal(lit) => Some(width + lit.len()),
        _ => None,
    })
}

/// Matches a star-free group at `start`; returns where it ends.
fn match_group(group: &[Segment<'_>], text: &str, start: usize, fold_case: bool) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut pos = start;
    for segment in group {
        match segment {
            Segment::Literal(lit) => {
                let end = pos.checked_add(lit.len()).filter(|end| *end <= bytes.len())?;
                let same = if fold_case {
                    bytes[pos..end].eq_ignore_ascii_case(lit.as_bytes())
                } else {
                    bytes_eq(&bytes[pos..end], lit.as_bytes())
                };
                if !same {
                    return None;
                }
                pos = end;
            }
            Segment::Question => pos += text.get(pos..)?.chars().next()?.len_utf8(),
            Segment::Star => return None,
        }
    }
    Some(pos)
}

/// Splits text into literals, wildcards and `${...}` variables. `${*}`,
/// `${?}` and `${$}` are the literal characters; a `${` without a closing
/// brace, or with a malformed default, stays literal text.
pub(crate) fn tokenize(text: &str, syntax: Syntax) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let flush = |literal: &mut String, pieces: &mut Vec<Piece>| {
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(literal).into()));
        }
    };
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if syntax.variables
            && rest.starts_with("${")
            && let Some(close) = rest[2..].find('}')
        {
            let inner = &rest[2..2 + close];
            let whole = &rest[..close + 3];
            rest = &rest[close + 3..];
            match inner {
                "*" | "?" | "$" => literal.push_str(inner),
                _ => match parse_variable(inner) {
                    Some(variable) => {
                        flush(&mut literal, &mut pieces);
                        pieces.push(Piece::Variable(variable));
                    }
                    None => literal.push_str(whole),
                },
            }
            continue;
        }
        rest = &rest[c.len_utf8()..];
        match c {
            '*' if syntax.wildcards => {
                flush(&mut literal, &mut pieces);
                // Consecutive stars mean the same as one.
                if pieces.last() != Some(&Piece::Star) {
                    pieces.push(Piece::Star);
                }
            }
            '?' if syntax.wildcards => {
                flush(&mut literal, &mut pieces);
                pieces.push(Piece::Question);
            }
            _ => literal.push(c),
        }
    }
    flush(&mut literal, &mut pieces);
    pieces
}

/// `key` or `key, 'default'` (AWS writes the default in single quotes).
fn parse_variable(inner: &str) -> Option<Variable> {
    let (key, default) = match inner.split_once(',') {
        Some((key, default)) => {
            let default = default.trim();
            let unquoted = default.strip_prefix('\'')?.strip_suffix('\'')?;
            (key, Some(unquoted.into()))
        }
        None => (inner, None),
    };
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    Some(Variable {
        key: KeyName::new(key),
        default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOB: Syntax = Syntax {
        wildcards: true,
        variables: true,
    };

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::compile(pattern, GLOB, false).matches(text, false, &ContextKeys::new())
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "abc", true),
            ("a*", "ba", false),
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("a**c", "ac", true),
            ("*a*", "bab", true),
            ("*a?", "xay", true),
            ("*a?", "xa", false),
            ("*?", "", false),
            ("?*", "x", true),
            ("*ab*ab", "abab", true),
            ("*ab*ab", "ab", false),
            ("x*?y", "x1y", true),
            ("x*?y", "xy", false),
            ("exact", "exact", true),
            ("exact", "Exact", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(m(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn variable_escapes_are_literal() {
        assert!(m("a${*}b", "a*b"));
        assert!(!m("a${*}b", "axb"));
        assert!(m("${?}", "?"));
        assert!(m("${$}{x}", "${x}"));
        assert!(m("a${unclosed", "a${unclosed"));
    }

    #[test]
    fn folded_case() {
        let p = Pattern::compile("SecretsManager:Get*", GLOB, true);
        let keys = ContextKeys::new();
        assert!(p.matches("secretsmanager:getsecretvalue", true, &keys));
        assert!(p.matches("SECRETSMANAGER:GETSECRETVALUE", true, &keys));
        assert!(!p.matches("secretsmanager:PutSecretValue", true, &keys));
    }

    #[test]
    fn arn_parts() {
        let parts = Pattern::compile_arn_parts("arn:aws:iam::${aws:PrincipalAccount}:user/a:b", GLOB).unwrap();
        let sources: Vec<_> = parts.iter().map(|p| format!("{:?}", p.shape)).collect();
        assert_eq!(parts.len(), 6, "{sources:?}");
        assert!(Pattern::compile_arn_parts("arn:aws:iam", GLOB).is_none());
    }
}
