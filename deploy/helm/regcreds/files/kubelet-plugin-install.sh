#!/bin/sh
# Installs regcreds as the kubelet's image credential provider on this node (chart value kubeletPlugin,
# templates/kubelet-plugin.yaml): the binary into the kubelet's --image-credential-provider-bin-dir and a
# CredentialProviderConfig that names it into the --image-credential-provider-config directory.
#
# It runs in the regcreds image (distroless: no shell of its own) with busybox copied in by the DaemonSet's
# first init container, so $PATH holds busybox applets only. POSIX sh; tests/tests/kubelet_plugin_install.rs
# runs it the same way against temporary directories.
#
# Input (environment):
#   PLUGIN_NAME         provider name = the executable's name in the bin directory
#   PLUGIN_SOURCE       the binary to install (/regcreds in the image)
#   PLUGIN_BIN_DIR      the kubelet's bin directory, mounted from the host
#   PLUGIN_CONFIG_DIR   the directory of the config file, mounted from the host
#   PLUGIN_CONFIG_FILE  the config file's name in it
#   PLUGIN_CONFIG_HEAD  the rendered config up to the provider's env list (a ConfigMap file)
#   PLUGIN_ENV          names of the variables for the provider's env list, separated by spaces; the value of
#                       NAME is in RC_ENV_NAME (so that PATH or HOME in the list cannot change this script)
#
# Both files are written to a temporary name in their target directory and renamed over the target: rename(2)
# is atomic within a filesystem, so the kubelet never execs or reads a half-written file. The temporary names
# do not end in .json, .yaml or .yml, which a kubelet reading the whole directory skips
# (k8s.io/kubernetes pkg/credentialprovider/plugin/config.go, readCredentialProviderConfig).
set -eu
umask 077

fail() {
  echo "regcreds kubelet plugin: $*" >&2
  exit 1
}

for var in PLUGIN_NAME PLUGIN_SOURCE PLUGIN_BIN_DIR PLUGIN_CONFIG_DIR PLUGIN_CONFIG_FILE PLUGIN_CONFIG_HEAD; do
  eval "value=\${$var-}"
  [ -n "$value" ] || fail "$var is not set"
done
[ -f "$PLUGIN_SOURCE" ] || fail "$PLUGIN_SOURCE does not exist"
[ -f "$PLUGIN_CONFIG_HEAD" ] || fail "$PLUGIN_CONFIG_HEAD does not exist"
for dir in "$PLUGIN_BIN_DIR" "$PLUGIN_CONFIG_DIR"; do
  [ -d "$dir" ] && [ -w "$dir" ] || fail "$dir is not a writable directory (hostPath mount, SELinux label?)"
done

bin_tmp="$PLUGIN_BIN_DIR/.$PLUGIN_NAME.$$.tmp"
config_tmp="$PLUGIN_CONFIG_DIR/.$PLUGIN_CONFIG_FILE.$$.tmp"
trap 'rm -f "$bin_tmp" "$config_tmp"' EXIT

# place TMP TARGET MODE WHAT: TMP (complete) becomes TARGET with MODE, unless TARGET already has these bytes.
place() {
  chmod "$3" "$1"
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    chmod "$3" "$2"
    rm -f "$1"
    echo "$4 $2 is up to date"
    return
  fi
  sync
  mv -f "$1" "$2"
  echo "$4 $2 written"
}

# yaml_string VALUE: VALUE as a YAML double-quoted scalar. Backslash and quote are escaped, line breaks
# become \n; tabs may stay as they are. Other control characters are refused by the caller.
yaml_string() {
  printf '%s\n' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | awk 'NR > 1 { printf "%s", "\\n" } { printf "%s", $0 }'
}

# The binary. The kubelet execs <bin dir>/<name> for every matching pull (exec.LookPath in
# RegisterCredentialProviderPlugins), so a new binary takes effect without a kubelet restart.
cp "$PLUGIN_SOURCE" "$bin_tmp"
place "$bin_tmp" "$PLUGIN_BIN_DIR/$PLUGIN_NAME" 0755 binary

# The config: the rendered head, then the env list from this container's environment. Root-only (0600):
# its env values may hold credentials.
{
  cat "$PLUGIN_CONFIG_HEAD"
  if [ -z "${PLUGIN_ENV:-}" ]; then
    echo "    env: []"
  else
    echo "    env:"
  fi
} >"$config_tmp"
for name in ${PLUGIN_ENV:-}; do
  case $name in
    '' | [0-9]* | *[!A-Za-z0-9_]*) fail "PLUGIN_ENV: $name is not a variable name" ;;
  esac
  eval "isset=\${RC_ENV_$name+set} value=\${RC_ENV_$name-}"
  [ "$isset" = set ] || fail "RC_ENV_$name (the value of $name) is not set"
  bad=$(printf '%s' "$value" | tr -cd '\001-\010\013-\037\177' | wc -c)
  [ "$bad" -eq 0 ] || fail "$name contains control characters other than tab and line feed (a carriage return?)"
  quoted=$(yaml_string "$value")
  printf '      - name: %s\n        value: "%s"\n' "$name" "$quoted" >>"$config_tmp"
done
place "$config_tmp" "$PLUGIN_CONFIG_DIR/$PLUGIN_CONFIG_FILE" 0600 config
trap - EXIT

echo "installed: the kubelet reads $PLUGIN_CONFIG_DIR/$PLUGIN_CONFIG_FILE only when it starts; restart it after a change of the config"
