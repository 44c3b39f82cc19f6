//! Fuzzes frame cutting and decoding: arbitrary bytes as a connection's stream, cut into
//! length-delimited frames and decoded as every message type (`vigil::fuzzing::decode_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let outcome = vigil::fuzzing::decode_frames(data);
    assert!(outcome.decoded <= outcome.frames);
});
