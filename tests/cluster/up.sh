#!/usr/bin/env bash
# Starts the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and the KWOK controller, all on 127.0.0.1) with one fake node, builds its binaries
# first if needed, and writes a kubeconfig. Running it again while the cluster is up does nothing.
#
#   tests/cluster/up.sh            # then: export KUBECONFIG=$(tests/cluster/kubeconfig.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${EDDY_CLUSTER_CACHE:-$root/.cache/cluster}
bin=$cache/bin
name=${EDDY_CLUSTER_NAME:-eddy}
kubeconfig=$cache/kubeconfig
export KWOK_WORKDIR=$cache/kwok

"$here/build.sh"

# Up means the apiserver answers and every other component still runs (a controller-manager that
# died would leave namespaces terminating forever).
components_running() {
  local component
  for component in etcd kube-apiserver kube-controller-manager kube-scheduler kwok-controller; do
    pgrep -f "^$KWOK_WORKDIR/clusters/$name/bin/$component " >/dev/null || return 1
  done
}
if [[ -f $kubeconfig ]] && "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  if components_running; then
    echo "local control plane already running (KUBECONFIG=$kubeconfig)"
    exit 0
  fi
  echo "a component of the local control plane has stopped; starting it afresh"
fi

# A cluster left behind by a killed run (processes gone, state on disk) is removed first.
"$bin/kwokctl" delete cluster --name "$name" >/dev/null 2>&1 || true
rm -f "$kubeconfig"

mkdir -p "$KWOK_WORKDIR"
config=$cache/kwokctl.yaml
cat > "$config" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  kubeApiserverBinary: $bin/kube-apiserver
  kubeControllerManagerBinary: $bin/kube-controller-manager
  kubeSchedulerBinary: $bin/kube-scheduler
  kwokControllerBinary: $bin/kwok
  etcdBinary: $bin/etcd
  kubectlBinary: $bin/kubectl
# controller-manager and scheduler, one instance each: leader election would only let a busy
# machine (a benchmark saturating both cores) make them miss a renewal and exit.
componentsPatches:
# A /16 Service range (65,534 addresses) instead of the default /24, which fills at 254 Services:
# a benchmark's 200 Canaries alone make 600.
- name: kube-apiserver
  extraArgs:
  - key: service-cluster-ip-range
    value: 10.96.0.0/16
- name: kube-controller-manager
  extraArgs:
  - key: leader-elect
    value: "false"
- name: kube-scheduler
  extraArgs:
  - key: leader-elect
    value: "false"
YAML

echo "starting the local control plane"
if ! "$bin/kwokctl" create cluster --name "$name" --config "$config" --kubeconfig "$kubeconfig" --wait 2m >"$cache/create.log" 2>&1; then
  cat "$cache/create.log" >&2
  echo "the local control plane did not start; component logs: $KWOK_WORKDIR/clusters/$name/logs" >&2
  exit 1
fi

"$bin/kubectl" --kubeconfig "$kubeconfig" apply -f "$here/fake-node.yaml" >/dev/null
"$bin/kubectl" --kubeconfig "$kubeconfig" wait --for=condition=Ready node/kwok-node-0 --timeout=60s >/dev/null
# The default ServiceAccount is created asynchronously; objects created right away may need it.
for _ in $(seq 1 50); do
  "$bin/kubectl" --kubeconfig "$kubeconfig" -n default get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done
echo "local control plane is up (KUBECONFIG=$kubeconfig)"
