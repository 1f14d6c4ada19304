//! The crate layering, checked: each crate of the workspace may depend only on what its role
//! needs, and `cargo xtask layering --check` fails when `cargo tree` shows a forbidden edge (for
//! example notify-controller linking gix, or the source crate linking the apply engine). The
//! rules are the table in docs/architecture.md.

use std::collections::BTreeSet;
use std::process::Command;

use anyhow::{Context, bail};

/// Per crate, the crates it must never depend on, directly or through another.
pub const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "eddy-api",
        &[
            "eddy-runtime",
            "eddy-source",
            "eddy-apply",
            "eddy-kustomize",
            "gix",
            "oci-client",
            "axum",
        ],
    ),
    ("eddy-kustomize", &["eddy-api", "kube", "gix", "oci-client", "tokio"]),
    (
        "eddy-runtime",
        &[
            "eddy-source",
            "eddy-apply",
            "eddy-kustomize",
            "eddy-remote-base",
            "gix",
            "oci-client",
        ],
    ),
    (
        "eddy-source",
        &["eddy-runtime", "eddy-apply", "eddy-kustomize", "eddy-remote-base"],
    ),
    (
        "eddy-apply",
        &[
            "eddy-runtime",
            "eddy-source",
            "eddy-kustomize",
            "eddy-remote-base",
            "gix",
            "oci-client",
        ],
    ),
    (
        "source-controller",
        &["eddy-apply", "eddy-kustomize", "eddy-remote-base"],
    ),
    (
        "notify-controller",
        &[
            "eddy-source",
            "eddy-apply",
            "eddy-kustomize",
            "eddy-remote-base",
            "gix",
            "oci-client",
        ],
    ),
    (
        "progressive-controller",
        &["eddy-source", "eddy-kustomize", "eddy-remote-base", "gix", "oci-client"],
    ),
];

/// The crates `package` depends on for building (dev-dependencies excluded), as `cargo tree`
/// resolves them for that package alone.
fn dependencies(package: &str) -> anyhow::Result<BTreeSet<String>> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "--quiet",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!("cargo tree -p {package}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Fails naming every forbidden edge found.
pub fn check() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (package, forbidden) in FORBIDDEN {
        let found = dependencies(package)?;
        for crate_name in *forbidden {
            if found.contains(*crate_name) {
                problems.push(format!("{package} depends on {crate_name}"));
            }
        }
    }
    if problems.is_empty() {
        println!("crate layering holds ({} crates checked)", FORBIDDEN.len());
        Ok(())
    } else {
        bail!(
            "forbidden dependencies (see docs/architecture.md):\n  {}",
            problems.join("\n  ")
        )
    }
}
