//! Fuzzes a whole build: input bytes become a kustomization, a resource, a patch and a base
//! kustomization (parts split by NUL) in a fresh temporary root, built with tight limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = tempfile::tempdir().expect("creating a temporary directory");
    eddy_kustomize::fuzzing::loader(data, scratch.path());
});
