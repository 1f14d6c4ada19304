//! Fuzzes strategic merge: input bytes become a target and a patch object (split by NUL),
//! merged as a Deployment and as a custom resource.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    eddy_kustomize::fuzzing::strategic_merge(data);
});
