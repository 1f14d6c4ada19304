//! The Git side of `eddy bootstrap git`: clone one branch (creating it when the repository or
//! the branch is empty), write files, commit, push with a rebase-and-retry on a
//! non-fast-forward. It runs the `git` command (gitoxide cannot push yet); credentials reach it
//! through its environment (a credential helper reading variables, `GIT_SSH_COMMAND`), never its
//! arguments, and every message is stripped of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// How to authenticate to the repository.
#[derive(Clone, Debug, Default)]
pub struct GitAuth {
    /// HTTP(S) user.
    pub username: Option<String>,
    /// HTTP(S) password or token.
    pub password: Option<String>,
    /// SSH private key file.
    pub private_key: Option<PathBuf>,
    /// SSH known_hosts file.
    pub known_hosts: Option<PathBuf>,
}

/// A local clone of one branch.
pub struct Checkout {
    dir: tempfile::TempDir,
    branch: String,
    auth: GitAuth,
    author: (String, String),
}

/// Times a push is retried after a rebase onto what someone else pushed meanwhile.
const PUSH_ATTEMPTS: usize = 3;

impl Checkout {
    /// Clones `branch` of `url`; an empty repository or a missing branch gives an empty work
    /// tree on a new branch.
    pub fn clone(url: &str, branch: &str, auth: GitAuth, author: (String, String)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let checkout = Checkout {
            dir,
            branch: branch.to_owned(),
            auth,
            author,
        };
        checkout.git(&["init", "--quiet", "--initial-branch", branch])?;
        checkout.git(&["remote", "add", "origin", url])?;
        let heads = checkout
            .git(&["ls-remote", "--heads", "origin", &format!("refs/heads/{branch}")])
            .with_context(|| format!("reading the branches of {url}"))?;
        if heads.trim().is_empty() {
            return Ok(checkout);
        }
        checkout
            .git(&["fetch", "--quiet", "--depth", "1", "origin", branch])
            .with_context(|| format!("fetching branch {branch} of {url}"))?;
        checkout.git(&["reset", "--quiet", "--hard", "FETCH_HEAD"])?;
        Ok(checkout)
    }

    /// The work tree.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` to `relative`; whether the file changed.
    pub fn write(&self, relative: &str, content: &str) -> anyhow::Result<bool> {
        let path = self.dir.path().join(relative);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == content) {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {relative}"))?;
        Ok(true)
    }

    /// Commits everything under `paths`; the new commit, or `None` when nothing changed.
    pub fn commit(&self, paths: &[&str], message: &str) -> anyhow::Result<Option<String>> {
        let mut add = vec!["add", "--all", "--"];
        add.extend_from_slice(paths);
        self.git(&add)?;
        let staged = self.git_output(&["diff", "--cached", "--quiet"])?;
        if staged.status.success() {
            return Ok(None);
        }
        self.git(&["commit", "--quiet", "--message", message])?;
        Ok(Some(self.head()?))
    }

    /// The checked-out commit.
    pub fn head(&self) -> anyhow::Result<String> {
        Ok(self.git(&["rev-parse", "HEAD"])?.trim().to_owned())
    }

    /// Pushes the branch; when someone else pushed meanwhile, rebases onto it and tries again.
    /// Returns the pushed commit.
    pub fn push(&self) -> anyhow::Result<String> {
        let refspec = format!("HEAD:refs/heads/{}", self.branch);
        let mut attempt = 1;
        loop {
            let output = self.git_output(&["push", "--quiet", "origin", &refspec])?;
            if output.status.success() {
                return self.head();
            }
            let message = self.redact(&String::from_utf8_lossy(&output.stderr));
            let behind =
                message.contains("non-fast-forward") || message.contains("fetch first") || message.contains("rejected");
            if !behind || attempt >= PUSH_ATTEMPTS {
                bail!("git push to branch {} failed: {}", self.branch, message.trim());
            }
            self.git(&["fetch", "--quiet", "origin", &self.branch])?;
            self.git(&["rebase", "--quiet", "FETCH_HEAD"])
                .context("rebasing onto the branch that changed while bootstrapping")?;
            attempt += 1;
        }
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.git_output(args)?;
        if !output.status.success() {
            bail!(
                "git {} failed: {}",
                args.first().unwrap_or(&""),
                self.redact(String::from_utf8_lossy(&output.stderr).trim())
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn git_output(&self, args: &[&str]) -> anyhow::Result<Output> {
        let mut command = Command::new("git");
        command
            .current_dir(self.dir.path())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", &self.author.0)
            .env("GIT_AUTHOR_EMAIL", &self.author.1)
            .env("GIT_COMMITTER_NAME", &self.author.0)
            .env("GIT_COMMITTER_EMAIL", &self.author.1)
            // A credential helper that answers from the environment: the password is never an
            // argument of any process.
            .args(["-c", "credential.helper="])
            .args([
                "-c",
                "credential.helper=!f() { test \"$1\" = get || exit 0; test -n \"$EDDY_GIT_USERNAME\" && echo \"username=$EDDY_GIT_USERNAME\"; test -n \"$EDDY_GIT_PASSWORD\" && echo \"password=$EDDY_GIT_PASSWORD\"; }; f",
            ])
            .args(["-c", "commit.gpgsign=false"])
            .args(args);
        command.env(
            "EDDY_GIT_USERNAME",
            self.auth
                .username
                .as_deref()
                .unwrap_or(if self.auth.password.is_some() { "git" } else { "" }),
        );
        command.env("EDDY_GIT_PASSWORD", self.auth.password.as_deref().unwrap_or_default());
        if let Some(key) = &self.auth.private_key {
            let mut ssh = format!("ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes", shell_quote(key));
            match &self.auth.known_hosts {
                Some(known) => ssh.push_str(&format!(
                    " -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
                    shell_quote(known)
                )),
                None => ssh.push_str(" -o StrictHostKeyChecking=yes"),
            }
            command.env("GIT_SSH_COMMAND", ssh);
        }
        command
            .output()
            .context("running git (it must be installed to bootstrap)")
    }

    fn redact(&self, text: &str) -> String {
        match self.auth.password.as_deref().filter(|p| !p.is_empty()) {
            Some(password) => text.replace(password, "***"),
            None => text.to_owned(),
        }
    }
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> (String, String) {
        ("Eddy Tests".into(), "tests@eddy.dev".into())
    }

    fn bare_repository() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("git")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let url = format!("file://{}", dir.path().display());
        (dir, url)
    }

    fn files_on_main(bare: &Path) -> String {
        let output = Command::new("git")
            .args(["ls-tree", "-r", "--name-only", "main"])
            .current_dir(bare)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }

    #[test]
    fn an_empty_repository_gets_the_branch_and_nothing_changed_commits_nothing() {
        let (bare, url) = bare_repository();
        let checkout = Checkout::clone(&url, "main", GitAuth::default(), author()).unwrap();
        assert!(checkout.write("clusters/dev/a.yaml", "a: 1\n").unwrap());
        let commit = checkout.commit(&["clusters"], "a").unwrap().expect("a commit");
        assert_eq!(checkout.push().unwrap(), commit);
        assert_eq!(files_on_main(bare.path()), "clusters/dev/a.yaml\n");

        let again = Checkout::clone(&url, "main", GitAuth::default(), author()).unwrap();
        assert!(!again.write("clusters/dev/a.yaml", "a: 1\n").unwrap());
        assert_eq!(again.commit(&["clusters"], "nothing").unwrap(), None);
    }

    #[test]
    fn a_push_after_someone_elses_push_is_rebased_and_keeps_both() {
        let (bare, url) = bare_repository();
        let first = Checkout::clone(&url, "main", GitAuth::default(), author()).unwrap();
        first.write("README.md", "fleet\n").unwrap();
        first.commit(&["README.md"], "start").unwrap();
        first.push().unwrap();

        // Two clones of the same commit; the other one pushes first.
        let ours = Checkout::clone(&url, "main", GitAuth::default(), author()).unwrap();
        let theirs = Checkout::clone(&url, "main", GitAuth::default(), author()).unwrap();
        theirs.write("apps/web.yaml", "web: 1\n").unwrap();
        theirs.commit(&["apps"], "web").unwrap();
        theirs.push().unwrap();

        ours.write("clusters/dev/sync.yaml", "sync: 1\n").unwrap();
        ours.commit(&["clusters"], "sync").unwrap();
        let pushed = ours.push().expect("rebased and pushed");
        assert_eq!(
            files_on_main(bare.path()),
            "README.md\napps/web.yaml\nclusters/dev/sync.yaml\n"
        );
        let tip = Command::new("git")
            .args(["rev-parse", "main"])
            .current_dir(bare.path())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&tip.stdout).trim(), pushed);
    }
}
