//! Fuzzes the event endpoint's body: decoding, the duplicate key and Alert matching.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| notify_controller::fuzzing::event(data));
