# Sourced by controlplane-build.sh and node-build.sh: a Go module that builds k8s.io/kubernetes commands.
#
# Why a wrapper module: k8s.io/kubernetes requires every staging module at v0.0.0 and its own
# `replace => ./staging/...` lines are ignored when it is a dependency, so the consumer must pin each
# staging module to v0.<minor>.<patch> itself (golang/go#32776, kubernetes/kubernetes#79384).

# k8s_wrapper_module DIR VERSION CMD...: (re)creates DIR as a module requiring k8s.io/kubernetes
# vVERSION with the staging replaces and a tools.go importing k8s.io/kubernetes/cmd/CMD for each CMD,
# then `go mod tidy`; leaves the shell in DIR. Chatty (one line per downloaded module): run it under
# the caller's `quiet`.
k8s_wrapper_module() {
  local dir="$1" version="$2"
  shift 2
  local staging="v0.${version#1.}" gomod mod cmd
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
  go mod init "local/$(basename "$dir")-build" || return 1
  go mod download -json "k8s.io/kubernetes@v$version" > kubernetes-module.json || return 1
  gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' kubernetes-module.json)"
  for mod in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
    go mod edit -replace="$mod=$mod@$staging" || return 1
  done
  go mod edit -require="k8s.io/kubernetes@v$version" || return 1
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for cmd in "$@"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$cmd"; done
    printf ')\n'
  } > tools.go
  go mod tidy
}

# k8s_ldflags VERSION: -ldflags that make `--version` and /version report VERSION (not v0.0.0-master).
k8s_ldflags() {
  local version="$1"
  printf '%s' "-s -w -X k8s.io/component-base/version.gitVersion=v$version" \
    " -X k8s.io/component-base/version.gitMajor=1" \
    " -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2)" \
    " -X k8s.io/component-base/version.gitTreeState=clean"
}
