//! Fuzzes the listener's side of the handshake (`Hello`, then the cluster-secret exchange) of a
//! master with a secret the fuzzer does not know: nothing may be accepted, nothing may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let verdict = vigil::fuzzing::handshake(data);
    assert!(verdict.is_err(), "accepted without the cluster secret: {verdict:?}");
});
