//! Random tokens. One generator for every token the library hands out or relies on:
//! lock tokens, session ids, session nonces, tag versions and load-lease tokens all come
//! from `rand::rng()`, a ChaCha CSPRNG seeded from the operating system (and reseeded
//! by `rand`), so none can be predicted from another or from the clock.

use rand::Rng;

/// `N` random bytes.
pub(crate) fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// `N` random bytes as lowercase hex (`2 * N` characters).
pub(crate) fn hex<const N: usize>() -> String {
    hex::encode(bytes::<N>())
}

/// A random `u64`.
pub(crate) fn u64() -> u64 {
    rand::rng().next_u64()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_distinct_and_sized() {
        let a = super::hex::<16>();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        let many: std::collections::HashSet<String> =
            (0..1000).map(|_| super::hex::<16>()).collect();
        assert_eq!(many.len(), 1000);
        assert_ne!(super::u64(), super::u64());
    }
}
