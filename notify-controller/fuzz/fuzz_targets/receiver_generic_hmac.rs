//! Fuzzes a generic_hmac Receiver's verification: header lines, a NUL, then the body.
#![no_main]

use eddy_api::notify::ReceiverType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| notify_controller::fuzzing::receiver(ReceiverType::GenericHmac, data));
