//! Expected names and hashes were produced by `kubectl kustomize` (kustomize v5.5.0) on the same
//! inputs.

use serde_json::{Value, json};

use super::*;
use crate::Limits;
use crate::resource::ResMap;

struct Dir {
    _tmp: tempfile::TempDir,
    ldr: Loader,
}

fn dir_with(files: &[(&str, &[u8])]) -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, content) in files {
        let path = tmp.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let ldr = Loader::new(tmp.path(), tmp.path(), &Limits::default()).unwrap();
    Dir { _tmp: tmp, ldr }
}

fn empty_dir() -> Dir {
    dir_with(&[])
}

fn args(yaml: &str) -> ConfigMapArgs {
    serde_json::from_value(crate::yaml::parse_document(yaml, &Limits::default()).unwrap()).unwrap()
}

fn secret_args(yaml: &str) -> SecretArgs {
    serde_json::from_value(crate::yaml::parse_document(yaml, &Limits::default()).unwrap()).unwrap()
}

fn options(yaml: &str) -> GeneratorOptions {
    serde_json::from_value(crate::yaml::parse_document(yaml, &Limits::default()).unwrap()).unwrap()
}

/// What the build prints: absorb every resource, then hash at the end.
fn built(resources: Vec<Resource>) -> ResMap {
    let mut rm = ResMap::new();
    for r in resources {
        absorb(&mut rm, r).unwrap();
    }
    add_hash_suffixes(&mut rm).unwrap();
    rm
}

fn only(rm: &ResMap) -> &Resource {
    assert_eq!(rm.len(), 1, "{rm:?}");
    &rm.resources()[0]
}

fn err_of<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn literals_are_split_at_the_first_equals_and_lose_matching_quotes() {
    let dir = empty_dir();
    let cm = config_map(
        &args(
            r#"
name: cm
literals:
- a=1
- b="quoted"
- c='single'
- d="mismatch'
- e=x=y
- f=<&>
- " g = sp "
- h="
"#,
        ),
        None,
        &dir.ldr,
    )
    .unwrap();
    let rm = built(vec![cm]);
    let cm = only(&rm);
    assert_eq!(cm.name(), "cm-g8bt267bck");
    assert_eq!(
        cm.obj["data"],
        json!({" g ": " sp ", "a": "1", "b": "quoted", "c": "single", "d": "\"mismatch'",
               "e": "x=y", "f": "<&>", "h": "\""})
    );
    assert_eq!(cm.api_version(), "v1");
    assert!(cm.obj.get("binaryData").is_none());
}

#[test]
fn env_files_skip_comments_and_blanks_and_never_read_the_environment() {
    // HOME is set in any test process; a bare key must still come out empty.
    let dir = dir_with(&[(
        "a.env",
        b"\xef\xbb\xbf# comment\n\n  FOO=bar\nBARE\nHOME\n=skip\nQ=\"quoted\" \r\nSP = x\nLAST=end",
    )]);
    let cm = config_map(&args("name: envcm\nenvs: [a.env]"), None, &dir.ldr).unwrap();
    let rm = built(vec![cm]);
    let cm = only(&rm);
    assert_eq!(cm.name(), "envcm-89t6t2584c");
    assert_eq!(
        cm.obj["data"],
        json!({"BARE": "", "FOO": "bar", "HOME": "", "LAST": "end", "Q": "\"quoted\" ", "SP ": " x"})
    );
}

#[test]
fn files_take_the_base_name_or_an_explicit_key_and_binary_goes_to_binary_data() {
    let dir = dir_with(&[
        ("sub/app.conf", b"hello\nworld\n"),
        ("other.txt", b"x=1"),
        ("blob.bin", b"\x00\x01\xff\xfebinary"),
    ]);
    let cm = config_map(
        &args("name: files\nnamespace: ns1\nfiles: [sub/app.conf, renamed=other.txt, blob.bin]"),
        None,
        &dir.ldr,
    )
    .unwrap();
    let rm = built(vec![cm]);
    let cm = only(&rm);
    assert_eq!(cm.name(), "files-hh96t27h4d");
    assert_eq!(cm.namespace(), "ns1");
    assert_eq!(cm.obj["data"], json!({"app.conf": "hello\nworld\n", "renamed": "x=1"}));
    assert_eq!(cm.obj["binaryData"], json!({"blob.bin": "AAH//mJpbmFyeQ=="}));
}

#[test]
fn secrets_base64_their_values_in_70_character_lines_and_keep_their_type() {
    let long = "A".repeat(100);
    let dir = dir_with(&[("long.txt", long.as_bytes()), ("blob.bin", b"\x00\x01\xff\xfebinary")]);
    let s = secret(
        &secret_args(
            "name: sec\ntype: kubernetes.io/tls\nliterals: [tls.key=k, tls.crt=c]\nfiles: [long.txt, blob.bin]",
        ),
        None,
        &dir.ldr,
    )
    .unwrap();
    let rm = built(vec![s]);
    let s = only(&rm);
    assert_eq!(s.name(), "sec-8mtd99dchb");
    assert_eq!(s.obj["type"], "kubernetes.io/tls");
    assert_eq!(
        s.obj["data"],
        json!({
            "blob.bin": "AAH//mJpbmFyeQ==",
            "long.txt": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU\n\
                         FBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==\n",
            "tls.crt": "Yw==",
            "tls.key": "aw==",
        })
    );
}

#[test]
fn an_empty_secret_is_opaque_with_empty_data_and_an_empty_config_map_has_no_data() {
    let dir = empty_dir();
    let s = secret(&secret_args("name: empty"), None, &dir.ldr).unwrap();
    let cm = config_map(&args("name: nodata"), None, &dir.ldr).unwrap();
    let rm = built(vec![s, cm]);
    let (s, cm) = (&rm.resources()[0], &rm.resources()[1]);
    assert_eq!(s.name(), "empty-46f8b28mk5");
    assert_eq!(s.obj["type"], "Opaque");
    assert_eq!(s.obj["data"], json!({}));
    assert_eq!(cm.name(), "nodata-6ct58987ht");
    assert!(cm.obj.get("data").is_none());
}

#[test]
fn local_options_win_over_global_ones_and_labels_do_not_change_the_hash() {
    let dir = empty_dir();
    let global = options("labels: {team: global, shared: global}\nannotations: {note: global}\nimmutable: true");
    let local = config_map(
        &args("name: local\nliterals: [k=v]\noptions: {labels: {shared: local}, annotations: {extra: local}}"),
        Some(&global),
        &dir.ldr,
    )
    .unwrap();
    let plain = config_map(&args("name: plain\nliterals: [k=v]"), Some(&global), &dir.ldr).unwrap();
    let nohash = config_map(
        &args("name: nohash\nliterals: [k=v]\noptions: {disableNameSuffixHash: true}"),
        Some(&global),
        &dir.ldr,
    )
    .unwrap();
    let rm = built(vec![local, plain, nohash]);
    let [local, plain, nohash] = rm.resources() else {
        panic!("three resources")
    };
    assert_eq!(local.name(), "local-bdg947hgcc");
    assert_eq!(plain.name(), "plain-bdg947hgcc");
    assert_eq!(nohash.name(), "nohash");
    assert_eq!(
        local.obj["metadata"]["labels"],
        json!({"shared": "local", "team": "global"})
    );
    assert_eq!(
        local.obj["metadata"]["annotations"],
        json!({"extra": "local", "note": "global"})
    );
    assert_eq!(
        plain.obj["metadata"]["labels"],
        json!({"shared": "global", "team": "global"})
    );
    for r in [local, plain, nohash] {
        assert_eq!(r.obj["immutable"], json!(true));
    }
}

#[test]
fn global_disable_name_suffix_hash_applies_even_when_the_generator_has_options() {
    let dir = empty_dir();
    let global = options("disableNameSuffixHash: true");
    let s = secret(
        &secret_args("name: s\nliterals: [k=v]\noptions: {immutable: true}"),
        Some(&global),
        &dir.ldr,
    )
    .unwrap();
    let rm = built(vec![s]);
    let s = only(&rm);
    assert_eq!(s.name(), "s");
    assert_eq!(s.obj["immutable"], json!(true));
    assert_eq!(s.obj["data"], json!({"k": "dg=="}));
}

#[test]
fn the_hash_escapes_like_go_json() {
    // Control characters, quotes, HTML characters, line and paragraph separators, non-ASCII.
    let weird = "\x01\x08\x0c\t\r\n\"\\/<>&\u{2028}\u{2029}\u{85} é😀\x1f";
    let dir = dir_with(&[("weird.txt", weird.as_bytes())]);
    let cm = config_map(&args("name: weird\nfiles: [weird.txt]"), None, &dir.ldr).unwrap();
    let s = secret(&secret_args("name: sweird\nfiles: [weird.txt]"), None, &dir.ldr).unwrap();
    let rm = built(vec![cm, s]);
    assert_eq!(rm.resources()[0].name(), "weird-gb6c7t764d");
    assert_eq!(rm.resources()[1].name(), "sweird-8t2fdg8d4c");
}

#[test]
fn the_hash_ignores_the_name_and_the_old_name_is_remembered() {
    let dir = empty_dir();
    let mut cm = config_map(
        &args("name: gen\nliterals: [a=base, b=overlay, c=overlay]"),
        None,
        &dir.ldr,
    )
    .unwrap();
    cm.set_name("p-gen");
    let rm = built(vec![cm]);
    let cm = only(&rm);
    assert_eq!(cm.name(), "p-gen-69t48k55ff");
    let names: Vec<_> = cm.previous.iter().map(|id| id.name.as_str()).collect();
    assert_eq!(names, ["gen", "p-gen"]);
    let other = config_map(
        &args("name: other\nliterals: [a=base, b=overlay, c=overlay]"),
        None,
        &dir.ldr,
    )
    .unwrap();
    assert_eq!(only(&built(vec![other])).name(), "other-69t48k55ff");
}

/// The base of the merge and replace tests: a generated ConfigMap and a plain one, both
/// renamed by `namePrefix: p-`.
fn base(dir: &Dir) -> ResMap {
    let mut generated = config_map(
        &args(
            "name: gen\nliterals: [a=base, b=base]\noptions: {labels: {from: base, keep: base}, annotations: {ba: base}}",
        ),
        None,
        &dir.ldr,
    )
    .unwrap();
    let Value::Object(obj) = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "plain", "labels": {"from": "base"}, "annotations": {"pa": "base"}},
        "data": {"x": "1", "y": "base"},
        "binaryData": {"bin": "AAE="},
    }) else {
        unreachable!()
    };
    let mut plain = Resource::from_object(obj).unwrap();
    generated.set_name("p-gen");
    plain.set_name("p-plain");
    ResMap::from_iter([generated, plain])
}

fn overlay(dir: &Dir, behavior: &str) -> [Resource; 2] {
    let generated = config_map(
        &args(&format!(
            "name: gen\nbehavior: {behavior}\nliterals: [b=overlay, c=overlay]\noptions: {{labels: {{from: overlay}}, annotations: {{oa: overlay}}}}"
        )),
        None,
        &dir.ldr,
    )
    .unwrap();
    let plain = config_map(
        &args(&format!("name: plain\nbehavior: {behavior}\nliterals: [y=overlay]")),
        None,
        &dir.ldr,
    )
    .unwrap();
    [generated, plain]
}

#[test]
fn merge_combines_data_and_metadata_and_keeps_the_base_name() {
    let dir = empty_dir();
    let mut rm = base(&dir);
    for r in overlay(&dir, "merge") {
        absorb(&mut rm, r).unwrap();
    }
    add_hash_suffixes(&mut rm).unwrap();
    let [generated, plain] = rm.resources() else {
        panic!("two resources")
    };
    assert_eq!(generated.name(), "p-gen-69t48k55ff");
    assert_eq!(
        generated.obj["data"],
        json!({"a": "base", "b": "overlay", "c": "overlay"})
    );
    assert_eq!(
        generated.obj["metadata"]["labels"],
        json!({"from": "overlay", "keep": "base"})
    );
    assert_eq!(
        generated.obj["metadata"]["annotations"],
        json!({"ba": "base", "oa": "overlay"})
    );
    assert_eq!(generated.org_id().name, "gen");
    // Merging into a ConfigMap from `resources` never adds a hash.
    assert_eq!(plain.name(), "p-plain");
    assert_eq!(plain.obj["data"], json!({"x": "1", "y": "overlay"}));
    assert_eq!(plain.obj["binaryData"], json!({"bin": "AAE="}));
    assert_eq!(plain.obj["metadata"]["labels"], json!({"from": "base"}));
    assert_eq!(plain.obj["metadata"]["annotations"], json!({"pa": "base"}));
}

#[test]
fn replace_drops_the_base_data_but_keeps_its_metadata() {
    let dir = empty_dir();
    let mut rm = base(&dir);
    for r in overlay(&dir, "replace") {
        absorb(&mut rm, r).unwrap();
    }
    add_hash_suffixes(&mut rm).unwrap();
    let [generated, plain] = rm.resources() else {
        panic!("two resources")
    };
    assert_eq!(generated.name(), "p-gen-9hk7m4t9k7");
    assert_eq!(generated.obj["data"], json!({"b": "overlay", "c": "overlay"}));
    assert_eq!(
        generated.obj["metadata"]["labels"],
        json!({"from": "overlay", "keep": "base"})
    );
    assert_eq!(plain.name(), "p-plain");
    assert_eq!(plain.obj["data"], json!({"y": "overlay"}));
    assert!(plain.obj.get("binaryData").is_none());
}

#[test]
fn merge_hashes_only_when_both_sides_want_a_hash() {
    let dir = empty_dir();
    let base_hashed = config_map(&args("name: a\nliterals: [k=base]"), None, &dir.ldr).unwrap();
    let base_plain = config_map(
        &args("name: b\nliterals: [k=base]\noptions: {disableNameSuffixHash: true}"),
        None,
        &dir.ldr,
    )
    .unwrap();
    let mut rm = ResMap::from_iter([base_hashed, base_plain]);
    let over_plain = config_map(
        &args("name: a\nbehavior: merge\nliterals: [k2=o]\noptions: {disableNameSuffixHash: true}"),
        None,
        &dir.ldr,
    )
    .unwrap();
    let over_hashed = config_map(&args("name: b\nbehavior: merge\nliterals: [k2=o]"), None, &dir.ldr).unwrap();
    absorb(&mut rm, over_plain).unwrap();
    absorb(&mut rm, over_hashed).unwrap();
    add_hash_suffixes(&mut rm).unwrap();
    let names: Vec<_> = rm.iter().map(Resource::name).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn merge_matches_the_default_namespace_and_keeps_the_base_namespace() {
    let dir = empty_dir();
    let base = config_map(&args("name: a\nliterals: [k=base]"), None, &dir.ldr).unwrap();
    let mut rm = ResMap::from_iter([base]);
    let over = config_map(
        &args("name: a\nnamespace: default\nbehavior: merge\nliterals: [k2=o]"),
        None,
        &dir.ldr,
    )
    .unwrap();
    absorb(&mut rm, over).unwrap();
    add_hash_suffixes(&mut rm).unwrap();
    let a = only(&rm);
    assert_eq!(a.name(), "a-8m6hmt494d");
    assert_eq!(a.namespace(), "");
    assert_eq!(a.obj["data"], json!({"k": "base", "k2": "o"}));
}

#[test]
fn create_on_an_existing_id_and_merge_or_replace_on_a_missing_one_fail() {
    let dir = empty_dir();
    let mut rm = ResMap::from_iter([config_map(&args("name: a\nliterals: [k=base]"), None, &dir.ldr).unwrap()]);
    let again = config_map(&args("name: a\nliterals: [k2=o]"), None, &dir.ldr).unwrap();
    let e = err_of(absorb(&mut rm, again));
    assert!(
        e.contains("ConfigMap 'a' has behavior create") && e.contains("merge or replace"),
        "{e}"
    );
    let missing = config_map(&args("name: zzz\nbehavior: replace\nliterals: [k2=o]"), None, &dir.ldr).unwrap();
    let e = err_of(absorb(&mut rm, missing));
    assert_eq!(
        e,
        "ConfigMap 'zzz' has behavior replace, but no object ConfigMap.v1.[noGrp]/zzz.[noNs] exists to replace with"
    );
    assert_eq!(rm.len(), 1);
}

#[test]
fn repeated_keys_are_errors_across_sources() {
    let dir = dir_with(&[("f.txt", b"v\n"), ("e.env", b"K=2\n"), ("e2.env", b"K=3\nJ=1\n")]);
    let e = err_of(config_map(
        &args("name: dup\nliterals: [k=1]\nfiles: [k=f.txt]"),
        None,
        &dir.ldr,
    ));
    assert_eq!(e, "ConfigMap 'dup' repeats the key 'k'");
    // The legacy `env` is read after `envs`.
    let e = err_of(config_map(&args("name: x\nenv: e.env\nenvs: [e2.env]"), None, &dir.ldr));
    assert_eq!(e, "ConfigMap 'x' repeats the key 'K'");
    let e = err_of(secret(
        &secret_args("name: s\nliterals: [a=b]\nfiles: [a=f.txt]"),
        None,
        &dir.ldr,
    ));
    assert_eq!(e, "Secret 's' repeats the key 'a'");
}

#[test]
fn legacy_env_is_read_like_envs() {
    let dir = dir_with(&[("e.env", b"K=2\n"), ("e2.env", b"J=1\n")]);
    let cm = config_map(&args("name: x\nenv: e.env\nenvs: [e2.env]"), None, &dir.ldr).unwrap();
    assert_eq!(cm.obj["data"], json!({"J": "1", "K": "2"}));
}

#[test]
fn a_generator_without_a_name_is_an_error() {
    let dir = empty_dir();
    assert_eq!(
        err_of(config_map(&args("literals: [k=1]"), None, &dir.ldr)),
        "a generated ConfigMap must have a name"
    );
    assert_eq!(
        err_of(secret(&secret_args("literals: [k=1]"), None, &dir.ldr)),
        "a generated Secret must have a name"
    );
}

#[test]
fn malformed_sources_are_errors_naming_the_entry() {
    let dir = dir_with(&[("f.txt", b"v"), ("d/x", b"")]);
    let cases = [
        (
            "literals: [novalue]",
            "ConfigMap 'x': literals[0]: 'novalue' is not of the form key=value",
        ),
        (
            "literals: [a=1, =v]",
            "ConfigMap 'x': literals[1]: '=v' is not of the form key=value",
        ),
        (
            "files: [=f.txt]",
            "ConfigMap 'x': files[0]: '=f.txt': missing key name before '='",
        ),
        (
            "files: [k=]",
            "ConfigMap 'x': files[0]: 'k=': missing file path after '='",
        ),
        (
            "files: [a=b=c]",
            "ConfigMap 'x': files[0]: 'a=b=c': key name or file path contains '='",
        ),
        ("files: [d]", "ConfigMap 'x': files[0]: d is a directory"),
    ];
    for (sources, expected) in cases {
        let e = err_of(config_map(&args(&format!("name: x\n{sources}")), None, &dir.ldr));
        assert_eq!(e, expected);
    }
    let e = err_of(config_map(&args("name: x\nfiles: [missing.txt]"), None, &dir.ldr));
    assert!(e.starts_with("ConfigMap 'x': files[0]: 'missing.txt': "), "{e}");
    let e = err_of(config_map(&args("name: x\nenvs: [missing.env]"), None, &dir.ldr));
    assert!(e.starts_with("ConfigMap 'x': envs[0]: 'missing.env': "), "{e}");
}

#[test]
fn inputs_outside_the_kustomization_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("app")).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "s3cr3t").unwrap();
    let ldr = Loader::new(tmp.path(), &tmp.path().join("app"), &Limits::default()).unwrap();
    let e = err_of(secret(&secret_args("name: s\nfiles: [../secret.txt]"), None, &ldr));
    assert!(e.starts_with("Secret 's': files[0]: security;"), "{e}");
}

#[test]
fn env_lines_kustomize_cannot_read_are_errors() {
    let mut long = b"A=1\nB=".to_vec();
    long.extend(std::iter::repeat_n(b'x', 65534));
    long.extend(b"\nC=3\n");
    let mut fits = b"A=1\nB=".to_vec();
    fits.extend(std::iter::repeat_n(b'x', 65533));
    fits.extend(b"\nC=3\n");
    let dir = dir_with(&[("long.env", &long), ("fits.env", &fits), ("bad.env", b"A=1\nB=\xff\n")]);
    let e = err_of(config_map(&args("name: l\nenvs: [long.env]"), None, &dir.ldr));
    assert_eq!(
        e,
        "ConfigMap 'l': envs[0]: env file long.env: line 2 is longer than 65535 bytes, which kustomize cannot read"
    );
    let rm = built(vec![
        config_map(&args("name: l\nenvs: [fits.env]"), None, &dir.ldr).unwrap(),
    ]);
    assert_eq!(only(&rm).name(), "l-tt8t8c7bk2");
    let e = err_of(config_map(&args("name: l\nenvs: [bad.env]"), None, &dir.ldr));
    assert_eq!(e, "ConfigMap 'l': envs[0]: env file bad.env: line 2 is not UTF-8");
}

#[test]
fn characters_kustomize_cannot_encode_in_arguments_are_errors() {
    let dir = empty_dir();
    let e = err_of(config_map(
        &args("name: esc\nliterals: [\"k=a\\x7fb\"]"),
        None,
        &dir.ldr,
    ));
    assert_eq!(
        e,
        "ConfigMap 'esc': literals[0] contains the character U+007F, which kustomize cannot pass on unchanged"
    );
    let e = err_of(config_map(
        &args("name: esc\nliterals: [k=a]\noptions: {labels: {\"a\\x80\": b}}"),
        None,
        &dir.ldr,
    ));
    assert!(e.contains("options.labels contains the character U+0080"), "{e}");
    // kustomize would turn NEL into a space.
    let e = err_of(config_map(
        &args("name: esc\nliterals: [\"k=a\\u0085b\"]"),
        None,
        &dir.ldr,
    ));
    assert!(e.contains("literals[0] contains the character U+0085"), "{e}");
    // Other controls, NBSP, BOM and noncharacters below U+FFFE pass.
    let cases = [
        ("k=a\\bb", "esc-b9mhgfb2fg"),
        ("k=a\\x01b", "esc-945kt46gdm"),
        ("k=a\\u00a0b", "esc-kg7642697g"),
        ("k=a\\ufeffb", "esc-6tgg7ktk26"),
        ("k=a\\ufdd0b", "esc-k24gdc6ct2"),
        ("k=a\\u2028b", "esc-2cg7d79b42"),
    ];
    for (literal, expected) in cases {
        let cm = config_map(&args(&format!("name: esc\nliterals: [\"{literal}\"]")), None, &dir.ldr).unwrap();
        assert_eq!(only(&built(vec![cm])).name(), expected, "{literal}");
    }
}

#[test]
fn secret_args_read_type_beside_the_shared_fields() {
    let s = secret_args("name: s\ntype: kubernetes.io/tls\nbehavior: merge\nliterals: [a=b]");
    assert_eq!(s.kind, "kubernetes.io/tls");
    assert_eq!(s.args.behavior, Behavior::Merge);
    assert_eq!(s.args.literals, ["a=b"]);
}

#[test]
fn generated_resources_are_marked_with_behavior_and_hash_wish() {
    let dir = empty_dir();
    let cm = config_map(
        &args("name: a\nbehavior: replace\noptions: {disableNameSuffixHash: true}"),
        None,
        &dir.ldr,
    )
    .unwrap();
    assert_eq!(
        cm.generated,
        Some(Generated {
            behavior: Behavior::Replace,
            hash_suffix: false
        })
    );
}

#[test]
fn unknown_generator_fields_are_errors() {
    let parse = |yaml: &str| crate::yaml::parse_document(yaml, &Limits::default()).unwrap();
    assert!(serde_json::from_value::<ConfigMapArgs>(parse("name: a\nliteral: [a=b]")).is_err());
    assert!(serde_json::from_value::<SecretArgs>(parse("name: a\nliteral: [a=b]")).is_err());
}
