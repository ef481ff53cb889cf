//! `cargo fuzz run --features libfuzzer keys`: [`sharecache_fuzz::keys`] on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sharecache_fuzz::keys(data));
