//! `cargo fuzz run --features libfuzzer config`: [`sharecache_fuzz::config`] on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sharecache_fuzz::config(data));
