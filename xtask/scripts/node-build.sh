#!/usr/bin/env bash
# Builds what a node runs besides the control plane, and caches it under
# $REGCREDS_CACHE/node/v$K8S_VERSION-containerd-v$CONTAINERD_VERSION/bin. Called by
# `cargo xtask controlplane build` after controlplane-build.sh (whose Go caches it reuses).
#
#   kubelet, kube-scheduler, kube-proxy   the same k8s.io/kubernetes release as the control plane
#   containerd, containerd-shim-runc-v2, ctr   github.com/containerd/containerd/v2
#   pause                                 the k8s module's own build/pause/linux/pause.c, static;
#                                         the test kit wraps it into the sandbox image at node start
#
# runc and the CNI plugins come from Debian (setup-test-deps.sh).
set -euo pipefail
# shellcheck source=k8s-wrapper-module.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-wrapper-module.sh"

K8S_VERSION="${K8S_VERSION:?}"                  # e.g. 1.37.2
CONTAINERD_VERSION="${CONTAINERD_VERSION:?}"    # e.g. 2.4.2
CACHE="${REGCREDS_CACHE:-$HOME/.cache/regcreds}"
OUT="$CACHE/node/v$K8S_VERSION-containerd-v$CONTAINERD_VERSION"
BIN="$OUT/bin"
KUBE_CMDS=(kubelet kube-scheduler kube-proxy)
CONTAINERD_CMDS=(containerd ctr containerd-shim-runc-v2)

step() { printf '[node] %s\n' "$*"; }
quiet() {
  local log="$OUT/src/last-step.log"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; step "failed: $*" >&2; exit 1; }
}
have_all() { local b; for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done; }

if have_all "${KUBE_CMDS[@]}" "${CONTAINERD_CMDS[@]}" pause; then
  step "cached: $BIN (nothing to do)"
  exit 0
fi
command -v go >/dev/null || { echo "go toolchain not found on PATH; install Go >= 1.25" >&2; exit 1; }
command -v gcc >/dev/null || { echo "gcc not found on PATH (needed for the pause binary)" >&2; exit 1; }
mkdir -p "$BIN" "$OUT/src"

if ! have_all "${KUBE_CMDS[@]}"; then
  step "preparing a wrapper module for k8s.io/kubernetes v$K8S_VERSION (${KUBE_CMDS[*]})"
  quiet k8s_wrapper_module "$OUT/src/kube" "$K8S_VERSION" "${KUBE_CMDS[@]}"
  step "compiling ${KUBE_CMDS[*]} (cold: ~5 min on 2 cores; ~1 min after the control plane)"
  CGO_ENABLED=0 go build -trimpath -ldflags "$(k8s_ldflags "$K8S_VERSION")" -o "$OUT/src/out/" \
    "${KUBE_CMDS[@]/#/k8s.io/kubernetes/cmd/}"
  for b in "${KUBE_CMDS[@]}"; do mv "$OUT/src/out/$b" "$BIN/"; done
fi

if ! have_all "${CONTAINERD_CMDS[@]}"; then
  step "building containerd v$CONTAINERD_VERSION from github.com/containerd/containerd/v2"
  rm -rf "$OUT/src/containerd" && mkdir -p "$OUT/src/containerd" && cd "$OUT/src/containerd"
  quiet go mod init local/containerd-build
  quiet go get "github.com/containerd/containerd/v2@v$CONTAINERD_VERSION"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in "${CONTAINERD_CMDS[@]}"; do printf '\t_ "github.com/containerd/containerd/v2/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > tools.go
  quiet go mod tidy
  # Static, no cgo (no btrfs/devmapper snapshotters, which a test node does not use); the shim
  # without grpc, as upstream's release build.
  ldf="-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION"
  tags="urfave_cli_no_docs osusergo netgo static_build"
  CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ldf" -o "$OUT/src/out/" \
    github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/ctr
  CGO_ENABLED=0 go build -trimpath -tags "$tags no_grpc" -ldflags "$ldf" -o "$OUT/src/out/" \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  for b in "${CONTAINERD_CMDS[@]}"; do mv "$OUT/src/out/$b" "$BIN/"; done
fi

if [[ ! -x "$BIN/pause" ]]; then
  step "compiling pause from k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
  src="$(go env GOMODCACHE)/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
  [[ -f "$src" ]] || quiet go mod download "k8s.io/kubernetes@v$K8S_VERSION"
  gcc -Os -static -Wall -DVERSION="v$K8S_VERSION-regcreds" -o "$OUT/src/pause" "$src"
  strip "$OUT/src/pause"
  mv "$OUT/src/pause" "$BIN/pause"
fi
step "done: $("$BIN/kubelet" --version), containerd $("$BIN/containerd" --version | awk '{print $3}') at $BIN"
