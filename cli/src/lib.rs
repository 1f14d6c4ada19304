//! The `eddy` command line. Commands connect with the usual kubectl settings (`KUBECONFIG`,
//! `--context`) and print what a person needs to act on.

mod bootstrap;
mod build;
mod canary;
mod check;
mod components;
mod git;
mod install;
mod push;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Operate Eddy, the GitOps toolkit.
#[derive(Parser, Debug)]
#[command(name = "eddy", version, about)]
pub struct Cli {
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(subcommand)]
    command: Command,
}

/// How to reach the cluster.
#[derive(Args, Debug)]
struct ClusterArgs {
    /// The kubeconfig context to use; the current context when unset.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The kubeconfig file; `KUBECONFIG` or `~/.kube/config` when unset.
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Namespace of Eddy's controllers (eddy-system when unset); for `eddy canary`, the
    /// Canary's (the context's namespace when unset).
    #[arg(short = 'n', long = "namespace", global = true)]
    namespace: Option<String>,
}

impl ClusterArgs {
    /// The namespace Eddy's controllers run in.
    fn controllers_namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("eddy-system")
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the client version, and the cluster's when it is reachable.
    Version,
    /// Check that the cluster is reachable, Eddy's CRDs are established and each controller
    /// holds its leader Lease.
    Check,
    /// Publish to a registry.
    #[command(subcommand)]
    Push(PushCommand),
    /// Render a kustomization with Eddy's engine and print the YAML, as apply-controller
    /// renders it.
    Build(build::Build),
    /// Install Eddy and make it manage itself from a Git repository.
    #[command(subcommand)]
    Bootstrap(BootstrapCommand),
    /// Install Eddy's CRDs and controllers (or print them with --export).
    Install(install::Install),
    /// Remove Eddy's controllers, release its finalizers, and remove its CRDs as asked.
    Uninstall(install::Uninstall),
    /// Follow a Canary's release and answer its gates: status, promote, abort, pause, resume.
    #[command(subcommand)]
    Canary(canary::CanaryCommand),
}

#[derive(Subcommand, Debug)]
enum BootstrapCommand {
    /// Bootstrap from a Git repository: commit Eddy's components and a GitRepository and
    /// Kustomization that follow the cluster's path, install, and wait for the first sync.
    Git(Box<bootstrap::BootstrapGit>),
}

#[derive(Subcommand, Debug)]
enum PushCommand {
    /// Pack a directory and push it as an OCI artifact that OCIRepository objects consume.
    Artifact(push::PushArtifact),
}

/// Runs a command and turns its outcome into the exit code.
pub fn main(cli: Cli) -> ExitCode {
    // Rendering needs neither the cluster nor an async runtime.
    if let Command::Build(build) = &cli.command {
        return build.run();
    }
    if let Command::Install(install) = &cli.command
        && let Some(exported) = install.export(cli.cluster.controllers_namespace())
    {
        return match exported {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("✗ {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("eddy: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("✗ {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("client: {}", env!("CARGO_PKG_VERSION"));
            match connect(&cli.cluster).await {
                Ok(client) => match client.apiserver_version().await {
                    Ok(info) => println!("server: {}", info.git_version),
                    Err(err) => println!("server: unreachable ({err})"),
                },
                Err(err) => println!("server: {err:#}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Push(PushCommand::Artifact(args)) => {
            push::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(build) => Ok(build.run()),
        Command::Bootstrap(BootstrapCommand::Git(bootstrap)) => {
            let client = connect(&cli.cluster).await?;
            bootstrap.run(&client, cli.cluster.controllers_namespace()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Install(install) => {
            let client = connect(&cli.cluster).await?;
            install.run(&client, cli.cluster.controllers_namespace()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Uninstall(uninstall) => {
            let client = connect(&cli.cluster).await?;
            uninstall.run(&client, cli.cluster.controllers_namespace()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Canary(command) => {
            let client = connect(&cli.cluster).await?;
            canary::run(command, &client, cli.cluster.namespace.as_deref()).await
        }
        Command::Check => {
            let client = connect(&cli.cluster).await?;
            let report = check::run(&client, cli.cluster.controllers_namespace()).await?;
            print!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn connect(args: &ClusterArgs) -> anyhow::Result<Client> {
    eddy_source::install_crypto_provider();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kubeconfig = match &args.kubeconfig {
        // A file named on the command line must be read: no falling back to the in-cluster config.
        Some(path) => {
            Ok(Kubeconfig::read_from(path).with_context(|| format!("reading the kubeconfig {}", path.display()))?)
        }
        None => Kubeconfig::read(),
    };
    let config = match kubeconfig {
        Ok(kubeconfig) => kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .context("the kubeconfig cannot be used")?,
        Err(read_error) => kube::Config::incluster()
            .map_err(|_| read_error)
            .context("no kubeconfig (KUBECONFIG or ~/.kube/config) and not running in a cluster")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}
