//! `cargo fuzz run --features libfuzzer codec`: [`sharecache_fuzz::codec`] on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sharecache_fuzz::codec(data));
