//! Property tests: key building and pattern escaping never cross a namespace.

use proptest::prelude::*;
use sharecache::key::{
    escape_glob, glob_match, validate_key, validate_namespace, validate_pattern,
};

fn namespace() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,8}"
}

fn key() -> impl Strategy<Value = String> {
    // Printable text with every glob metacharacter well represented.
    proptest::string::string_regex("[a-z*?\\[\\]\\\\^:%./ -]{1,24}|[\\PC]{1,12}").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any valid pattern, anchored to namespace A, never matches a key stored in another
    /// namespace B, including when A is a prefix of B.
    #[test]
    fn patterns_never_leave_their_namespace(a in namespace(), suffix in "[a-z0-9_-]{1,3}", pat in key(), k in key()) {
        let b = format!("{a}{suffix}");
        if validate_pattern(&pat).is_err() || validate_key(&k).is_err() {
            return Ok(()); // refused input never reaches a store
        }
        let anchored = format!("{a}:{pat}");
        let stored_in_b = format!("{b}:{k}");
        prop_assert!(!glob_match(anchored.as_bytes(), stored_in_b.as_bytes()), "{anchored} matched {stored_in_b}");
        // And the widest pattern of B never matches a key of A.
        let stored_in_a = format!("{a}:{k}");
        let all_of_b = format!("{}:*", b);
        prop_assert!(!glob_match(all_of_b.as_bytes(), stored_in_a.as_bytes()));
    }

    /// An escaped key matches exactly itself.
    #[test]
    fn escaped_keys_match_only_themselves(k in key(), other in key()) {
        let p = escape_glob(&k);
        prop_assert!(validate_pattern(&p).is_ok() || p.len() > 1024);
        prop_assert!(glob_match(p.as_bytes(), k.as_bytes()));
        if other != k {
            prop_assert!(!glob_match(p.as_bytes(), other.as_bytes()), "{p} matched {other}");
        }
    }

    /// Validation never panics, and accepted namespaces hold only the allowed characters.
    #[test]
    fn validation_is_total(s in "\\PC{0,80}|[\\x00-\\x7f]{0,80}") {
        if validate_namespace(&s).is_ok() {
            prop_assert!(s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-'));
            prop_assert!(!s.is_empty() && s.len() <= 64);
        }
        if validate_key(&s).is_ok() {
            prop_assert!(!s.chars().any(char::is_control));
        }
        let _ = validate_pattern(&s);
    }

    /// The matcher agrees with a simple reference on patterns made of literals and '*'.
    #[test]
    fn star_matching_agrees_with_reference(parts in proptest::collection::vec("[ab]{0,3}", 1..5), text in "[ab]{0,12}") {
        let pattern = parts.join("*");
        prop_assert_eq!(glob_match(pattern.as_bytes(), text.as_bytes()), reference(&parts, &text));
    }
}

/// Reference for `p0*p1*...*pn`: starts with p0, ends with pn, middle parts in order.
fn reference(parts: &[String], text: &str) -> bool {
    if parts.len() == 1 {
        return text == parts[0];
    }
    let (first, last) = (&parts[0], &parts[parts.len() - 1]);
    if !text.starts_with(first.as_str())
        || text.len() < first.len() + last.len()
        || !text.ends_with(last.as_str())
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid.as_str()) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}
