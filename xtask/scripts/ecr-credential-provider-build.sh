#!/usr/bin/env bash
# Builds cloud-provider-aws' kubelet plugin `ecr-credential-provider` from its Go module and caches it
# under $REGCREDS_CACHE/ecr-credential-provider/v$VERSION/bin. Called by `cargo xtask bench` (the plugin
# section's peer); not part of `cargo xtask test`.
#
# Why not `go install k8s.io/cloud-provider-aws/cmd/ecr-credential-provider@vX`: the module's go.mod has
# a `replace github.com/google/cel-go => github.com/cel-expr/cel-go`, and `go install pkg@version`
# refuses modules with replace directives. So the module itself is the main module here, built from a
# writable copy with its own go.mod and go.sum (exactly the dependency versions upstream releases with)
# and the flags of its Makefile's `ecr-credential-provider` target:
#   CGO_ENABLED=0 go build -trimpath -ldflags="-w -s -X k8s.io/component-base/version.gitVersion=$(VERSION)
#   -X main.gitVersion=$(VERSION)" cmd/ecr-credential-provider/*.go
set -euo pipefail

VERSION="${ECR_CREDENTIAL_PROVIDER_VERSION:?}"   # e.g. 1.37.1
MODULE=k8s.io/cloud-provider-aws
CACHE="${REGCREDS_CACHE:-$HOME/.cache/regcreds}"
OUT="$CACHE/ecr-credential-provider/v$VERSION"
BIN="$OUT/bin"

step() { printf '[ecr-credential-provider] %s\n' "$*"; }
quiet() {
  local log="$OUT/last-step.log"
  "$@" >"$log" 2>&1 || { cat "$log" >&2; step "failed: $*" >&2; exit 1; }
}

if [[ -x "$BIN/ecr-credential-provider" ]]; then
  step "cached: $BIN/ecr-credential-provider (nothing to do)"
  exit 0
fi
command -v go >/dev/null || { echo "go toolchain not found on PATH; install Go >= 1.26" >&2; exit 1; }
mkdir -p "$BIN" "$OUT"

step "downloading $MODULE@v$VERSION from the module proxy"
quiet go mod download -json "$MODULE@v$VERSION"
dir="$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' "$OUT/last-step.log")"
[[ -f "$dir/go.mod" ]] || { step "no module directory in: $(cat "$OUT/last-step.log")" >&2; exit 1; }
rm -rf "$OUT/src" && cp -r "$dir" "$OUT/src" && chmod -R u+w "$OUT/src"
cd "$OUT/src"
step "compiling cmd/ecr-credential-provider (cold: its ~100 modules are downloaded first)"
ldf="-w -s -X k8s.io/component-base/version.gitVersion=v$VERSION -X main.gitVersion=v$VERSION"
quiet env CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$BIN/ecr-credential-provider.tmp" \
  ./cmd/ecr-credential-provider
mv "$BIN/ecr-credential-provider.tmp" "$BIN/ecr-credential-provider"
rm -rf "$OUT/src"
step "done: $("$BIN/ecr-credential-provider" --version) at $BIN ($(du -h "$BIN/ecr-credential-provider" | cut -f1))"
