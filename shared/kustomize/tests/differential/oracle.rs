//! The oracle: `kubectl kustomize`, or the command named by `EDDY_ORACLE`, run as a
//! subprocess. Its stdout is parsed into documents with the engine's own YAML reader.

use std::path::Path;
use std::process::Command;

use eddy_kustomize::Limits;

use crate::compare::Outcome;

/// The kustomize release every case was checked against when it was written.
const EXPECTED_KUSTOMIZE: &str = "v5.5.";

/// The oracle command line: a program and its leading arguments.
pub struct Oracle {
    program: String,
    args: Vec<String>,
}

impl Oracle {
    /// Reads `EDDY_ORACLE` (default `kubectl`) and checks that its client embeds kustomize
    /// v5.5.x, since both the corpus and the engine target that release.
    pub fn from_env() -> Result<Self, String> {
        let line = std::env::var("EDDY_ORACLE").unwrap_or_else(|_| "kubectl".to_string());
        let mut words = line.split_whitespace().map(str::to_string);
        let program = words.next().ok_or("EDDY_ORACLE is empty")?;
        let oracle = Self {
            program,
            args: words.collect(),
        };
        let output = oracle.command().args(["version", "--client"]).output().map_err(|e| {
            format!(
                "cannot run the oracle `{line}`: {e}; install kubectl v1.32 (kustomize v5.5.0) \
                 or point EDDY_ORACLE at one"
            )
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("Kustomize Version:"))
            .map(str::trim)
            .ok_or_else(|| format!("`{line} version --client` does not report a Kustomize version:\n{text}"))?;
        if !version.starts_with(EXPECTED_KUSTOMIZE) {
            return Err(format!(
                "the oracle `{line}` embeds Kustomize {version}, but the corpus targets \
                 {EXPECTED_KUSTOMIZE}x; use kubectl v1.32 or set EDDY_ORACLE"
            ));
        }
        Ok(oracle)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command
    }

    /// Runs `kustomize <dir>` and parses what it prints. `Err` means the oracle itself could
    /// not be run or printed something unreadable: a harness problem, not a result.
    pub fn build(&self, dir: &Path) -> Result<Outcome, String> {
        let output = self
            .command()
            .arg("kustomize")
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run the oracle: {e}"))?;
        if !output.status.success() {
            return Ok(Outcome::Failed(
                String::from_utf8_lossy(&output.stderr).trim().to_string(),
            ));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        eddy_kustomize::yaml::parse_documents(&text, &Limits::default())
            .map(Outcome::Built)
            .map_err(|e| format!("cannot parse the oracle's output: {e}\n{text}"))
    }
}
