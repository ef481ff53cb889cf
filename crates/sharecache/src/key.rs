//! Namespaces, key validation and building, and glob patterns.
//!
//! Every stored key is `[prefix/]ns:key`. A namespace matches `[a-z0-9_-]{1,64}`, so it
//! can never contain `:`, `/` or a glob character: the literal `ns:` at the front of every
//! stored key and of every pattern is what confines a caller to its namespace, and the
//! `/` after a key prefix (a deployment's, [`PREFIX_SEPARATOR`]) is what keeps a prefixed
//! deployment's keys apart from every unprefixed namespace's (`app/user:k` is never
//! namespace `app`'s key `user:k`, which is stored as `app:user:k`). Redis glob
//! patterns must match the whole key, so a pattern that starts with the literal `ns:`
//! can only ever match keys that start with `ns:`; namespace `a` never reaches `ab:*`.
//!
//! Caller patterns are validated (length, no control characters, balanced `[...]`, no
//! dangling `\`, a bounded number of `*`) so a hostile pattern can neither break the
//! anchoring nor make the server spend exponential time matching.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;
/// Longest glob pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most `*` wildcards one pattern may hold (bounds the matcher's work).
pub const MAX_PATTERN_STARS: usize = 16;

/// A validated namespace name: `[a-z0-9_-]{1,64}`.
///
/// ```
/// use sharecache::NamespaceName;
/// assert!(NamespaceName::new("auth").is_ok());
/// assert!(NamespaceName::new("Auth").is_err());
/// assert!(NamespaceName::new("a:b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceName(Arc<str>);

impl NamespaceName {
    /// Validates `name` as a namespace.
    pub fn new(name: &str) -> Result<Self> {
        validate_namespace(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a namespace name against `[a-z0-9_-]{1,64}`.
pub fn validate_namespace(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAMESPACE_LEN {
        return Err(Error::new(
            ErrorKind::InvalidNamespace,
            format!(
                "invalid namespace: length {} is outside 1..={MAX_NAMESPACE_LEN}; \
                 use lowercase letters, digits, '_' and '-'",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        return Err(Error::new(
            ErrorKind::InvalidNamespace,
            format!(
                "invalid namespace {:?}: character {bad:?} is not allowed; \
                 use lowercase letters, digits, '_' and '-'",
                truncate_for_message(name)
            ),
        ));
    }
    Ok(())
}

/// Checks a key: 1..=1024 bytes of UTF-8 with no control characters.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!(
                "invalid key: length {} bytes is outside 1..={MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    // Fast path: printable ASCII is by far the common case.
    if key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Ok(());
    }
    if let Some(pos) = key.chars().position(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidKey,
            format!("invalid key: control character at character {pos}; keys must be printable"),
        ));
    }
    Ok(())
}

/// Checks a caller's glob pattern (Redis syntax: `*`, `?`, `[abc]`, `[^a-z]`, `\x`).
pub fn validate_pattern(pattern: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidPattern,
            format!("invalid pattern {:?}: {why}", truncate_for_message(pattern)),
        ))
    };
    if pattern.is_empty() || pattern.len() > MAX_PATTERN_LEN {
        return invalid(&format!("length must be 1..={MAX_PATTERN_LEN} bytes"));
    }
    if pattern.chars().any(char::is_control) {
        return invalid("control characters are not allowed");
    }
    let bytes = pattern.as_bytes();
    let mut stars = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                if i + 1 >= bytes.len() {
                    return invalid("it ends with a lone '\\'; write '\\\\' for a backslash");
                }
                i += 2;
                continue;
            }
            b'*' => stars += 1,
            b'[' => {
                // Find the closing bracket, honouring escapes; `[]` and `[^]` are refused.
                let mut j = i + 1;
                if j < bytes.len() && bytes[j] == b'^' {
                    j += 1;
                }
                let start = j;
                loop {
                    if j >= bytes.len() {
                        return invalid("'[' is not closed; write '\\[' for a literal bracket");
                    }
                    match bytes[j] {
                        b'\\' if j + 1 < bytes.len() => j += 2,
                        b'\\' => return invalid("it ends with a lone '\\'"),
                        b']' if j > start => break,
                        b']' => return invalid("empty character class '[]'"),
                        _ => j += 1,
                    }
                }
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if stars > MAX_PATTERN_STARS {
        return invalid(&format!("more than {MAX_PATTERN_STARS} '*' wildcards"));
    }
    Ok(())
}

/// Escapes every glob metacharacter in `literal`, so the result matches exactly `literal`.
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Matches `text` against a Redis-style glob `pattern`, byte-wise as Redis does.
///
/// Runs in O(len(pattern) * len(text)) at worst: on a mismatch it backtracks only to the
/// most recent `*`, never recursively, so no pattern can make it exponential.
#[doc(hidden)]
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = match_class(pattern, p, text[t])
                        && matched
                    {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Matches one byte against the class starting at `pattern[start] == b'['`.
/// Returns whether it matched and the index just past the closing `]`.
fn match_class(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < pattern.len() && pattern[i] == b'^';
    if negate {
        i += 1;
    }
    let first = i;
    let mut matched = false;
    loop {
        if i >= pattern.len() {
            return None;
        }
        let mut lo = pattern[i];
        if lo == b']' && i > first {
            break;
        }
        if lo == b'\\' && i + 1 < pattern.len() {
            i += 1;
            lo = pattern[i];
        }
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let mut hi = pattern[i + 2];
            i += 2;
            if hi == b'\\' && i + 1 < pattern.len() {
                i += 1;
                hi = pattern[i];
            }
            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            if (a..=b).contains(&c) {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
        i += 1;
    }
    Some((matched != negate, i + 1))
}

/// Internal key kinds: state the cache and each primitive keep beside a namespace's
/// keys, stored at `[prefix/]#kind:ns:name`. `#` is not a namespace character, so no
/// caller key, pattern, listing or clear can reach these keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Aux {
    /// A tag's current version (`cache/tags.rs`).
    Tag,
    /// A cross-instance load lease of `remember` (`cache/remember.rs`).
    Lease,
    /// A GCRA rate limit's state (`ratelimit`).
    RateLimit,
    /// A sliding-window rate limit's state (`ratelimit`): its own kind, so a key checked
    /// under both algorithms never hands one script the other's state.
    RateWindow,
    /// A lock: its holder's token (`lock`).
    Lock,
    /// A lock's fence counter, which never expires (`lock`).
    Fence,
    /// A presence set (`presence`).
    Presence,
    /// A publish/subscribe channel (`events`).
    Channel,
    /// A channel's durable event log (`events`).
    EventLog,
    /// A work queue's stream (`queue`).
    Queue,
    /// A work queue's dead letters (`queue`).
    DeadLetters,
    /// One session, under the SHA-256 of its id (`session`).
    Session,
    /// The index of one user's sessions (`session`).
    UserSessions,
}

impl Aux {
    /// Every kind.
    const ALL: [Aux; 13] = [
        Aux::Tag,
        Aux::Lease,
        Aux::RateLimit,
        Aux::RateWindow,
        Aux::Lock,
        Aux::Fence,
        Aux::Presence,
        Aux::Channel,
        Aux::EventLog,
        Aux::Queue,
        Aux::DeadLetters,
        Aux::Session,
        Aux::UserSessions,
    ];

    /// The kind's part of the stored key. Stored data depends on these: never change one.
    const fn label(self) -> &'static str {
        match self {
            Aux::Tag => "tag",
            Aux::Lease => "lease",
            Aux::RateLimit => "rl",
            Aux::RateWindow => "rlw",
            Aux::Lock => "lock",
            Aux::Fence => "fence",
            Aux::Presence => "presence",
            Aux::Channel => "ev",
            Aux::EventLog => "evs",
            Aux::Queue => "q",
            Aux::DeadLetters => "qdl",
            Aux::Session => "sess",
            Aux::UserSessions => "sessu",
        }
    }

    /// Kinds that one script touches together (a lock and its fence, a queue and its dead
    /// letters) put the name in a Redis Cluster hash tag (`#kind:ns:{name}`), so they
    /// share a slot.
    const fn slotted(self) -> bool {
        matches!(self, Aux::Lock | Aux::Fence | Aux::Queue | Aux::DeadLetters)
    }
}

/// What follows a key prefix in every stored key: outside the namespace alphabet (and not
/// `#`, which starts internal keys), so a prefixed key space can never equal an
/// unprefixed namespace's keys, whatever the prefix and the namespace are called.
pub const PREFIX_SEPARATOR: char = '/';

/// `[prefix/]`: the start of every key a deployment with this key prefix stores. `prefix`
/// must be a valid namespace name (the builder, the config and the commands check it).
pub fn deployment_head(prefix: Option<&str>) -> String {
    match prefix {
        Some(p) => format!("{p}{PREFIX_SEPARATOR}"),
        None => String::new(),
    }
}

/// `[prefix/]ns:`, the literal start of every caller key of namespace `ns`: the one
/// definition that the cache, `migrate`, `provision` and `export` share. Both names must
/// be valid namespace names.
pub fn namespace_head(prefix: Option<&str>, ns: &str) -> String {
    let mut head = deployment_head(prefix);
    head.push_str(ns);
    head.push(':');
    head
}

/// The namespace a stored key belongs to (`[prefix/]ns:key` or `[prefix/]#kind:ns:name`),
/// `""` for a key outside every namespace (the probe). The inverse of the layouts above,
/// for accounting that sees only stored keys (the memory fallback's per-namespace budget).
pub(crate) fn namespace_of(stored: &str) -> &str {
    // A prefix holds neither ':' nor '/': a '/' before the first ':' ends one.
    let rest = match (stored.find(PREFIX_SEPARATOR), stored.find(':')) {
        (Some(slash), colon) if colon.is_none_or(|c| slash < c) => &stored[slash + 1..],
        _ => stored,
    };
    let rest = match rest.strip_prefix('#') {
        Some(aux) => aux.split_once(':').map_or("", |(_, r)| r),
        None => rest,
    };
    rest.split_once(':').map_or("", |(ns, _)| ns)
}

/// `(kind, "[prefix/]#kind:ns:")` for every kind of internal key: the literal heads of the
/// state the primitives keep for namespace `ns` (locks, fences, sessions, queues, event
/// logs, rate limits, tags...), for tools that move a namespace whole (`export`,
/// `import`): a key `head + name` of one namespace is `head' + name` of another. Each head
/// is literal in a glob (`#`, `:`, `/` and the namespace alphabet are not glob characters).
pub fn internal_heads(prefix: Option<&str>, ns: &str) -> Vec<(&'static str, String)> {
    let head = deployment_head(prefix);
    Aux::ALL
        .iter()
        .map(|k| (k.label(), format!("{head}#{}:{ns}:", k.label())))
        .collect()
}

/// The namespace of a stored *caller* key of the deployment whose head
/// ([`deployment_head`]) is `head`: `None` for internal keys, other deployments' keys and
/// keys outside every namespace.
pub(crate) fn caller_namespace<'a>(head: &str, stored: &'a str) -> Option<&'a str> {
    let (ns, _) = stored.strip_prefix(head)?.split_once(':')?;
    validate_namespace(ns).is_ok().then_some(ns)
}

/// The one internal key outside every namespace: `[prefix/]#ready`, written (10 s TTL) by
/// [`Cache::ping_write`](crate::Cache::ping_write) to learn whether the backend takes
/// writes.
pub(crate) fn probe_key(prefix: Option<&NamespaceName>) -> String {
    deployment_head(prefix.map(NamespaceName::as_str)) + "#ready"
}

/// Builds stored keys and patterns for one namespace.
#[derive(Clone, Debug)]
pub(crate) struct KeySpace {
    /// `[prefix/]ns:`, the literal start of every key of the namespace.
    head: Arc<str>,
    /// `[prefix/]#`, the start of every internal key ([`Aux`]).
    aux_head: Arc<str>,
    /// The namespace name.
    ns: NamespaceName,
}

impl KeySpace {
    pub(crate) fn new(prefix: Option<&NamespaceName>, ns: &NamespaceName) -> Self {
        let prefix = prefix.map(NamespaceName::as_str);
        let head = namespace_head(prefix, ns.as_str());
        let aux_head = deployment_head(prefix) + "#";
        Self {
            head: Arc::from(head),
            aux_head: Arc::from(aux_head),
            ns: ns.clone(),
        }
    }

    /// The internal key of `kind` for a caller's `name`, which is validated like a key.
    pub(crate) fn aux(&self, kind: Aux, name: &str) -> Result<String> {
        validate_key(name)?;
        Ok(self.aux_of(kind, name))
    }

    /// The internal key of `kind` for a name the library built or validated itself (a
    /// session slot, a checked tag, an already-validated key).
    pub(crate) fn aux_of(&self, kind: Aux, name: &str) -> String {
        let (head, label, ns) = (&*self.aux_head, kind.label(), &self.ns);
        if kind.slotted() {
            format!("{head}{label}:{ns}:{{{name}}}")
        } else {
            format!("{head}{label}:{ns}:{name}")
        }
    }

    /// A stored pattern matching every internal key of `kind` in this namespace (for
    /// listings: the names inside are not escaped, the wildcard stands for all of them).
    pub(crate) fn aux_all(&self, kind: Aux) -> String {
        self.aux_of(kind, "*")
    }

    /// The name inside an internal key of `kind` of this namespace (the inverse of
    /// [`aux_of`](Self::aux_of)), or `None` for any other key.
    pub(crate) fn aux_name<'a>(&self, kind: Aux, stored: &'a str) -> Option<&'a str> {
        let rest = stored
            .strip_prefix(&*self.aux_head)?
            .strip_prefix(kind.label())?
            .strip_prefix(':')?
            .strip_prefix(self.ns.as_str())?
            .strip_prefix(':')?;
        let name = if kind.slotted() {
            rest.strip_prefix('{')?.strip_suffix('}')?
        } else {
            rest
        };
        (!name.is_empty()).then_some(name)
    }

    /// The stored key for a caller's key (validated).
    pub(crate) fn key(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        let mut full = String::with_capacity(self.head.len() + key.len());
        full.push_str(&self.head);
        full.push_str(key);
        Ok(full)
    }

    /// Runs `f` with the stored key for an already-validated `key`, built in a reused
    /// per-thread buffer: an L1 lookup then allocates nothing.
    #[inline]
    pub(crate) fn with_key<R>(&self, key: &str, f: impl FnOnce(&str) -> R) -> R {
        thread_local! {
            static BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        BUF.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.push_str(&self.head);
                buf.push_str(key);
                f(&buf)
            }
            // Re-entered from inside `f` (never by our code): fall back to allocating.
            Err(_) => f(&format!("{}{key}", self.head)),
        })
    }

    /// The stored pattern for a caller's pattern (validated), anchored to the namespace.
    pub(crate) fn pattern(&self, pattern: &str) -> Result<String> {
        validate_pattern(pattern)?;
        // The head holds only [a-z0-9_-:/], none of which is a glob metacharacter except
        // '-' (only special inside a class), so it is a literal as it stands.
        Ok(format!("{}{pattern}", self.head))
    }

    /// A pattern that matches every key of the namespace.
    pub(crate) fn all(&self) -> String {
        format!("{}*", self.head)
    }

    /// The caller's key for a stored key, or `None` if it is not in this namespace.
    pub(crate) fn strip<'a>(&self, stored: &'a str) -> Option<&'a str> {
        stored.strip_prefix(&*self.head)
    }
}

fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        s.to_owned()
    } else {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces() {
        for ok in ["a", "auth", "user-profile", "x_1", &"a".repeat(64)] {
            assert!(NamespaceName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a:b",
            "a*",
            "a b",
            "é",
            "a\n",
            &"a".repeat(65),
            "a/b",
            "a.b",
        ] {
            let e = NamespaceName::new(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidNamespace, "{bad:?}");
        }
    }

    #[test]
    fn keys() {
        for ok in [
            "k",
            "user:42",
            "ключ",
            "a*b?[c]\\",
            "..%2F",
            &"k".repeat(1024),
            "emoji 🎉",
        ] {
            assert!(validate_key(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "a\nb",
            "a\rb",
            "a\0b",
            "\u{7f}",
            "\u{85}",
            &"k".repeat(1025),
        ] {
            assert_eq!(
                validate_key(bad).unwrap_err().kind(),
                ErrorKind::InvalidKey,
                "{bad:?}"
            );
        }
        // Length is in bytes: 512 two-byte characters fit, 513 do not.
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert!(validate_key(&"é".repeat(513)).is_err());
    }

    #[test]
    fn patterns() {
        for ok in [
            "*", "user:*", "a?c", "[abc]*", "[^a-z]x", "\\*", "a\\[b", "[\\]]",
        ] {
            assert!(validate_pattern(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "[abc",
            "a\\",
            "[]",
            "[^]",
            "a\nb",
            &"*".repeat(17),
            &"a".repeat(1025),
        ] {
            assert_eq!(
                validate_pattern(bad).unwrap_err().kind(),
                ErrorKind::InvalidPattern,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn glob_semantics() {
        let m = |p: &str, t: &str| glob_match(p.as_bytes(), t.as_bytes());
        assert!(m("*", ""));
        assert!(m("a*", "abc"));
        assert!(!m("a*", "bac"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[abc]x", "bx"));
        assert!(!m("[^abc]x", "bx"));
        assert!(m("[a-c]x", "bx"));
        assert!(m("[c-a]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*d", "xxaxxbxxcxx"));
        assert!(m("a[\\]]b", "a]b"));
        assert!(m("a[-]b", "a-b"));
        // Anchored at both ends.
        assert!(!m("ab", "abc"));
        assert!(!m("bc", "abc"));
    }

    #[test]
    fn keyspace_confines_patterns() {
        let a = KeySpace::new(None, &NamespaceName::new("a").unwrap());
        let p = a.pattern("*").unwrap();
        assert!(glob_match(p.as_bytes(), b"a:x"));
        assert!(!glob_match(p.as_bytes(), b"ab:x"));
        assert_eq!(a.strip("a:key"), Some("key"));
        assert_eq!(a.strip("ab:key"), None);
        let prefixed = KeySpace::new(
            Some(&NamespaceName::new("app").unwrap()),
            &NamespaceName::new("a").unwrap(),
        );
        assert_eq!(prefixed.key("k").unwrap(), "app/a:k");
        assert_eq!(
            probe_key(Some(&NamespaceName::new("app").unwrap())),
            "app/#ready"
        );
    }

    #[test]
    fn internal_heads_start_every_internal_key() {
        let user = NamespaceName::new("user").unwrap();
        let app = NamespaceName::new("app").unwrap();
        for prefix in [None, Some(&app)] {
            let heads = internal_heads(prefix.map(NamespaceName::as_str), "user");
            let s = KeySpace::new(prefix, &user);
            for kind in Aux::ALL {
                let key = s.aux_of(kind, "x");
                assert_eq!(
                    heads
                        .iter()
                        .filter(|(_, h)| key.starts_with(h.as_str()))
                        .count(),
                    1,
                    "{key}"
                );
            }
        }
        assert_eq!(internal_heads(None, "user").len(), Aux::ALL.len());
    }

    #[test]
    fn namespace_of_reads_every_layout() {
        let user = NamespaceName::new("user").unwrap();
        let app = NamespaceName::new("app").unwrap();
        for prefix in [None, Some(&app)] {
            let s = KeySpace::new(prefix, &user);
            for stored in [
                s.key("k").unwrap(),
                s.key("a/b:c").unwrap(),
                s.key("#x:y").unwrap(),
                s.aux(Aux::Lock, "a/b").unwrap(),
                s.aux_of(Aux::Session, "h"),
            ] {
                assert_eq!(namespace_of(&stored), "user", "{stored}");
            }
            assert_eq!(namespace_of(&probe_key(prefix)), "", "the probe");
        }
        assert_eq!(namespace_of("plain"), "");
        assert_eq!(namespace_of(""), "");
        assert_eq!(caller_namespace("", "user:k"), Some("user"));
        assert_eq!(caller_namespace("app/", "app/user:k"), Some("user"));
        for other in ["#lock:user:{k}", "app/user:k", "Not A Namespace:k", "plain"] {
            assert_eq!(caller_namespace("", other), None, "{other}");
        }
    }

    /// Deployment `app`'s keys (prefix `app`) and namespace `app`'s keys of an unprefixed
    /// deployment never meet, in keys, internal keys, patterns or the probe.
    #[test]
    fn a_prefix_never_equals_a_namespace() {
        let app = NamespaceName::new("app").unwrap();
        let user = NamespaceName::new("user").unwrap();
        let prefixed = KeySpace::new(Some(&app), &user);
        let plain = KeySpace::new(None, &app);
        let stored = prefixed.key("secret").unwrap();
        assert_eq!(plain.strip(&stored), None, "{stored}");
        assert!(!glob_match(plain.all().as_bytes(), stored.as_bytes()));
        let lock = prefixed.aux(Aux::Lock, "k").unwrap();
        assert!(!glob_match(plain.all().as_bytes(), lock.as_bytes()));
        assert!(!glob_match(
            plain.all().as_bytes(),
            probe_key(Some(&app)).as_bytes()
        ));
        // And the unprefixed namespace's keys are not the prefixed deployment's.
        let theirs = plain.key("user:secret").unwrap();
        assert_eq!(prefixed.strip(&theirs), None);
        assert!(!glob_match(prefixed.all().as_bytes(), theirs.as_bytes()));
        assert!(validate_namespace("a/b").is_err());
    }

    /// Stored data depends on these layouts: a change would orphan every lock, session
    /// and queue already in Redis.
    #[test]
    fn internal_keys_keep_their_layout() {
        let a = KeySpace::new(None, &NamespaceName::new("a").unwrap());
        assert_eq!(a.aux(Aux::RateLimit, "k").unwrap(), "#rl:a:k");
        assert_eq!(a.aux(Aux::Lock, "k").unwrap(), "#lock:a:{k}");
        assert_eq!(a.aux(Aux::Fence, "k").unwrap(), "#fence:a:{k}");
        assert_eq!(a.aux(Aux::Queue, "k").unwrap(), "#q:a:{k}");
        assert_eq!(a.aux(Aux::DeadLetters, "k").unwrap(), "#qdl:a:{k}");
        assert_eq!(a.aux_of(Aux::Tag, "t"), "#tag:a:t");
        assert_eq!(a.aux_of(Aux::Lease, "k"), "#lease:a:k");
        for (kind, label) in [
            (Aux::Presence, "presence"),
            (Aux::Channel, "ev"),
            (Aux::EventLog, "evs"),
            (Aux::Session, "sess"),
            (Aux::UserSessions, "sessu"),
        ] {
            assert_eq!(a.aux_of(kind, "x"), format!("#{label}:a:x"));
        }
        let p = KeySpace::new(Some(&NamespaceName::new("app").unwrap()), &a.ns);
        assert_eq!(p.aux(Aux::Lock, "k").unwrap(), "app/#lock:a:{k}");
        assert!(
            a.aux(Aux::Lock, "").is_err(),
            "names are validated like keys"
        );
        assert!(a.aux(Aux::Presence, "bad\nname").is_err());
    }

    /// Listings of internal keys find exactly their kind of this namespace, and give
    /// back the name they were made from.
    #[test]
    fn aux_listing_patterns_and_names() {
        let app = NamespaceName::new("app").unwrap();
        let a = NamespaceName::new("a").unwrap();
        let ab = NamespaceName::new("ab").unwrap();
        for prefix in [None, Some(&app)] {
            let s = KeySpace::new(prefix, &a);
            let other = KeySpace::new(prefix, &ab);
            for kind in [
                Aux::Lock,
                Aux::Queue,
                Aux::Presence,
                Aux::Session,
                Aux::UserSessions,
            ] {
                let all = s.aux_all(kind);
                for name in ["k", "a:b", "{x}", "*"] {
                    let stored = s.aux(kind, name).unwrap();
                    assert!(
                        glob_match(all.as_bytes(), stored.as_bytes()),
                        "{all} {stored}"
                    );
                    assert_eq!(s.aux_name(kind, &stored), Some(name), "{stored}");
                    let theirs = other.aux(kind, name).unwrap();
                    assert!(
                        !glob_match(all.as_bytes(), theirs.as_bytes()),
                        "{all} {theirs}"
                    );
                    assert_eq!(s.aux_name(kind, &theirs), None);
                }
                assert!(!glob_match(all.as_bytes(), s.key("k").unwrap().as_bytes()));
            }
            // `#sess` is not `#sessu`, `#q` not `#qdl`, a lock not its fence.
            for (kind, not) in [
                (Aux::Session, Aux::UserSessions),
                (Aux::Queue, Aux::DeadLetters),
                (Aux::Lock, Aux::Fence),
            ] {
                let stored = s.aux(not, "k").unwrap();
                assert!(
                    !glob_match(s.aux_all(kind).as_bytes(), stored.as_bytes()),
                    "{stored}"
                );
                assert_eq!(s.aux_name(kind, &stored), None);
            }
        }
    }

    #[test]
    fn escape_round_trip() {
        for lit in ["a*b", "[x]", "q?", "\\", "a-b^c", "plain"] {
            let p = escape_glob(lit);
            assert!(glob_match(p.as_bytes(), lit.as_bytes()), "{lit}");
            assert!(validate_pattern(&p).is_ok(), "{p}");
        }
        assert!(!glob_match(escape_glob("a*").as_bytes(), b"abc"));
    }
}
