#!/usr/bin/env bash
# Prints the path of the local control plane's kubeconfig.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
echo "${EDDY_CLUSTER_CACHE:-$(cd "$here/../.." && pwd)/.cache/cluster}/kubeconfig"
