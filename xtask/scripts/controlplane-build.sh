#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager from their Go modules and caches them under
# $REGCREDS_CACHE/controlplane/v$K8S_VERSION/bin. Called by `cargo xtask controlplane build`.
#
# Why a wrapper module: k8s.io/kubernetes requires every staging module at v0.0.0 and its own
# `replace => ./staging/...` lines are ignored when it is a dependency, so the consumer must pin each
# staging module to v0.<minor>.<patch> itself (golang/go#32776, kubernetes/kubernetes#79384).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:?}"          # e.g. 1.37.2
ETCD_VERSION="${ETCD_VERSION:?}"        # e.g. 3.7.3
CACHE="${REGCREDS_CACHE:-$HOME/.cache/regcreds}"
OUT="$CACHE/controlplane/v$K8S_VERSION"
BIN="$OUT/bin"
MINOR="$(echo "$K8S_VERSION" | cut -d. -f2)"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

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
  step "preparing wrapper module for k8s.io/kubernetes v$K8S_VERSION (staging modules at $STAGING_VERSION)"
  rm -rf "$OUT/src/kube" && mkdir -p "$OUT/src/kube" && cd "$OUT/src/kube"
  quiet go mod init local/kas-build
  quiet go mod download -json "k8s.io/kubernetes@v$K8S_VERSION"
  gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' "$OUT/src/last-step.log")"
  for mod in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$mod=$mod@$STAGING_VERSION"
  done
  go mod edit -require="k8s.io/kubernetes@v$K8S_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  step "resolving modules (first run downloads ~400 MB)"
  quiet go mod tidy
  ldf="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean"
  step "compiling kube-apiserver and kube-controller-manager (cold: ~7 min on 2 cores)"
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$OUT/src/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  mv "$OUT/src/out/kube-apiserver" "$OUT/src/out/kube-controller-manager" "$BIN/"
fi
step "done: $("$BIN/kube-apiserver" --version) at $BIN"
