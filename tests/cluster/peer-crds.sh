#!/usr/bin/env bash
# Fetches the CRDs of the APIs that progressive-controller's traffic routers write (Gateway API's
# standard channel, Istio, SMI's TrafficSplit) from the Go modules their projects publish them in,
# through the Go module proxy, so that the cluster tests check the routers' objects against the
# real schemas. Nothing here is written by hand. The CRDs land in $EDDY_PEER_CRDS (default:
# <repo>/.cache/peer-crds, ignored by git) with a version stamp; a second run with the same stamp
# only says where they came from.
#
#   tests/cluster/peer-crds.sh    # then: kubectl apply --server-side -f .cache/peer-crds/
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${EDDY_PEER_CRDS:-$root/.cache/peer-crds}

# v1.6.3 rather than v1.7.0: v1.7.0's go.mod asks for Go 1.27, which GOTOOLCHAIN=auto would fetch
# (about 250 MB) just to read YAML; v1.6.3 already has HTTPRoute v1 and v1beta1, mirror `percent`
# and rule `timeouts` in the standard channel.
GATEWAY_API=sigs.k8s.io/gateway-api@v1.6.3
ISTIO_API=istio.io/api@v1.32.0
# v0.4.1: the last release whose TrafficSplit CRD serves v1alpha3, the version the `smi` router
# writes (v0.5.0 serves only v1alpha4). No module on the proxy publishes one serving v1alpha2
# (Linkerd's linkerd-smi is not there), so `smi:v1alpha2` is checked by unit tests only.
SMI_SDK=github.com/servicemeshinterface/smi-sdk-go@v0.4.1
SIGS_YAML=sigs.k8s.io/yaml@v1.6.0

# smi-sdk-go publishes its CRD as apiextensions.k8s.io/v1beta1, which Kubernetes stopped serving
# in 1.22. This program rewrites it as v1 and changes nothing else: the one schema goes to every
# version, the printer columns likewise (JSONPath becomes jsonPath), and the schema's root gets
# the `type: object` that v1 requires of every root.
read -r -d '' CONVERTER <<'GO' || true
package main

import (
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := convert(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "crd-v1beta1-to-v1:", err)
		os.Exit(1)
	}
}

func convert(in io.Reader, out io.Writer) error {
	text, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(text, &crd); err != nil {
		return err
	}
	if crd["apiVersion"] != "apiextensions.k8s.io/v1beta1" {
		return fmt.Errorf("expected an apiextensions.k8s.io/v1beta1 CRD, got %v", crd["apiVersion"])
	}
	spec, _ := crd["spec"].(map[string]any)
	validation, _ := spec["validation"].(map[string]any)
	schema, _ := validation["openAPIV3Schema"].(map[string]any)
	versions, _ := spec["versions"].([]any)
	if schema == nil || len(versions) == 0 {
		return fmt.Errorf("the CRD has no spec.validation.openAPIV3Schema or no spec.versions")
	}
	if _, typed := schema["type"]; !typed {
		schema["type"] = "object"
	}
	var columns []any
	if given, _ := spec["additionalPrinterColumns"].([]any); given != nil {
		for _, c := range given {
			column, _ := c.(map[string]any)
			column["jsonPath"] = column["JSONPath"]
			delete(column, "JSONPath")
			columns = append(columns, column)
		}
	}
	for _, v := range versions {
		version, _ := v.(map[string]any)
		version["schema"] = map[string]any{"openAPIV3Schema": schema}
		if columns != nil {
			version["additionalPrinterColumns"] = columns
		}
	}
	delete(spec, "validation")
	delete(spec, "additionalPrinterColumns")
	delete(spec, "version")
	crd["apiVersion"] = "apiextensions.k8s.io/v1"
	written, err := yaml.Marshal(crd)
	if err != nil {
		return err
	}
	_, err = out.Write(written)
	return err
}
GO

stamp=$(printf '%s\n' "$GATEWAY_API" "$ISTIO_API" "$SMI_SDK" "$SIGS_YAML" "$CONVERTER" | sha256sum | cut -c1-16)
sources() {
  echo "peer CRDs in $out (stamp $stamp), from the Go module proxy:"
  echo "  gateway-api-standard.yaml  $GATEWAY_API config/crd/standard/gateway.networking.k8s.io_*.yaml (the CRDs, not the safe-upgrades policy)"
  echo "  istio.yaml                 $ISTIO_API kubernetes/customresourcedefinitions.gen.yaml"
  echo "  smi-trafficsplit.yaml      $SMI_SDK crds/split.yaml, rewritten from apiextensions v1beta1 to v1"
}
if [[ -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
  sources
  exit 0
fi

export GOTOOLCHAIN=auto GOMODCACHE=$out/gomod GOFLAGS=-modcacherw
module_dir() {
  local dir
  dir=$(go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -d $dir ]] || { echo "go mod download $1 gave no directory" >&2; exit 1; }
  echo "$dir"
}

rm -f "$out/.stamp"
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "downloading $GATEWAY_API, $ISTIO_API and $SMI_SDK"
gateway=$(module_dir "$GATEWAY_API")
istio=$(module_dir "$ISTIO_API")
smi=$(module_dir "$SMI_SDK")

for crd in "$gateway"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  [[ $crd == *_vap_* ]] && continue
  echo "---"
  cat "$crd"
done > "$work/gateway-api-standard.yaml"
cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$work/istio.yaml"

mkdir -p "$work/converter"
printf '%s\n' "$CONVERTER" > "$work/converter/main.go"
(
  cd "$work/converter"
  go mod init eddy.dev/peer-crds/converter >/dev/null 2>&1
  go mod edit -require="$SIGS_YAML"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go run . < "$smi/crds/split.yaml"
) > "$work/smi-trafficsplit.yaml"

chmod 0644 "$work"/*.yaml
mv "$work"/*.yaml "$out/"
echo "$stamp" > "$out/.stamp"
sources
