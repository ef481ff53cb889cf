//! `cargo fuzz run --features libfuzzer http`: [`sharecache_fuzz::http`] on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sharecache_fuzz::http(data));
