//! `cargo fuzz run --features libfuzzer url`: [`sharecache_fuzz::url`] on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sharecache_fuzz::url(data));
