#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager from their Go modules and caches them under
# $REGCREDS_CACHE/controlplane/v$K8S_VERSION/bin. Called by `cargo xtask controlplane build`.
# The node's parts (kubelet, containerd, ...) are built by node-build.sh.
set -euo pipefail
# shellcheck source=k8s-wrapper-module.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-wrapper-module.sh"

K8S_VERSION="${K8S_VERSION:?}"          # e.g. 1.37.2
ETCD_VERSION="${ETCD_VERSION:?}"        # e.g. 3.7.3
CACHE="${REGCREDS_CACHE:-$HOME/.cache/regcreds}"
OUT="$CACHE/controlplane/v$K8S_VERSION"
BIN="$OUT/bin"

step() { printf '[controlplane] %s\n' "$*"; }
# Runs "$@" with its (chatty: one line per downloaded module) output in a log shown only on failure.
quiet() {
  local log="$OUT/src/last-step.log"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; step "failed: $*" >&2; exit 1; }
}

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/etcd" ]]; then
  step "cached: $BIN (nothing to do)"
  exit 0
fi
command -v go >/dev/null || { echo "go toolchain not found on PATH; install Go >= 1.25" >&2; exit 1; }
mkdir -p "$BIN" "$OUT/src"

if [[ ! -x "$BIN/etcd" ]]; then
  step "building etcd v$ETCD_VERSION from go.etcd.io/etcd/server/v3"
  rm -rf "$OUT/src/etcd" && mkdir -p "$OUT/src/etcd" && cd "$OUT/src/etcd"
  quiet go mod init local/etcd-build
  # `go install ...@v` fails because server/go.mod has a relative replace (etcd-io/etcd#18501).
  quiet go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
fi

if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" ]]; then
  step "preparing a wrapper module for k8s.io/kubernetes v$K8S_VERSION (first run downloads ~400 MB)"
  quiet k8s_wrapper_module "$OUT/src/kube" "$K8S_VERSION" kube-apiserver kube-controller-manager
  ldf="$(k8s_ldflags "$K8S_VERSION")"
  step "compiling kube-apiserver and kube-controller-manager (cold: ~7 min on 2 cores)"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$OUT/src/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  mv "$OUT/src/out/kube-apiserver" "$OUT/src/out/kube-controller-manager" "$BIN/"
fi
step "done: $("$BIN/kube-apiserver" --version) at $BIN"
