#!/usr/bin/env bash
# Stops the local control plane started by up.sh and removes its state (the built binaries stay
# cached).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${EDDY_CLUSTER_CACHE:-$root/.cache/cluster}
export KWOK_WORKDIR=$cache/kwok

if [[ -x $cache/bin/kwokctl ]]; then
  "$cache/bin/kwokctl" delete cluster --name "${EDDY_CLUSTER_NAME:-eddy}" >/dev/null 2>&1 || true
fi
rm -f "$cache/kubeconfig"
echo "local control plane stopped"
