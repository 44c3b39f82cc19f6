//! Fuzzes config parsing and validation of masters and proxies (`vigil::fuzzing::config`): any
//! text must give a config or an error naming the field, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vigil::fuzzing::config(data);
});
