#!/usr/bin/env bash
# Builds the local Kubernetes control plane from Go modules: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubectl from k8s.io/kubernetes, etcd from the etcd server module, and kwok +
# kwokctl. Binaries land in $EDDY_CLUSTER_CACHE/bin (default: <repo>/.cache/cluster/bin, ignored by
# git) with a version stamp; a second run with the same stamp does nothing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${EDDY_CLUSTER_CACHE:-$root/.cache/cluster}
bin=$cache/bin

KWOK_VERSION=v0.8.0
# The Kubernetes version required in go/kubernetes/go.mod, stamped into the binaries as
# Kubernetes' own release build does, so that `kubectl version` and the apiserver report it.
KUBE_VERSION=$(cd "$here/go/kubernetes" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
stamp_input() {
  echo "kwok=$KWOK_VERSION kube=$KUBE_VERSION"
  echo "go=$(go env GOVERSION)"
  cat "$here/go/kubernetes/go.mod" "$here/go/kubernetes/go.sum" "$here/go/etcd/go.mod" "$here/go/etcd/go.sum" "$here/go/etcd/main.go"
}
stamp=$(stamp_input | sha256sum | cut -c1-16)

# The CRDs of the APIs progressive-controller's routers write, for the cluster tests (cached). Here
# rather than at the end, which the up-to-date exit below would skip.
"$here/peer-crds.sh"

if [[ -f $bin/.stamp && $(cat "$bin/.stamp") == "$stamp" ]]; then
  echo "cluster binaries up to date ($bin, stamp $stamp)"
  exit 0
fi

mkdir -p "$bin"
rm -f "$bin/.stamp"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
# Stripped binaries: smaller cache, faster link; nobody debugs the control plane from here.
ldflags="-s -w"

kube_minor=${KUBE_VERSION#v1.}; kube_minor=${kube_minor%%.*}
kube_ldflags="$ldflags"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# Go prints nothing while it compiles: a line a minute says it is still at work.
started=$SECONDS
heartbeat() {
  while sleep 60; do
    echo "    ... still building the control plane ($(( (SECONDS - started) / 60 )) min so far)"
  done
}
heartbeat &
heartbeat_pid=$!
trap 'kill $heartbeat_pid 2>/dev/null || true' EXIT

echo "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $KUBE_VERSION"
echo "    (the first build downloads and compiles Kubernetes: about 10 minutes on 2 cores, longer on a slow network; later runs reuse it)"
(cd "$here/go/kubernetes" && go build -ldflags "$kube_ldflags" -o "$bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubectl)

echo "building etcd"
(cd "$here/go/etcd" && go build -ldflags "$ldflags" -o "$bin/etcd" .)

echo "building kwok and kwokctl $KWOK_VERSION"
GOBIN=$bin go install -ldflags "$ldflags" \
  "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"

echo "$stamp" > "$bin/.stamp"
echo "cluster binaries built in $bin in $(( (SECONDS - started) / 60 )) min"
