# shellcheck shell=bash
# Sourced (not run) by .ci/install-docker.sh and test/images/build-standins.sh:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"     # path relative to the sourcing script
#   mirror=$(debian_mirror)
#
# Defines only the function below; sets no shell options and no variables, and is safe under
# `set -euo pipefail`.

# Prints the Debian mirror the system already uses (first non-security http(s) .../debian URL in a
# deb822 .sources or one-line .list file), else http://deb.debian.org/debian. No trailing slash.
debian_mirror() {
  local files=() f m
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ "${#files[@]}" -gt 0 ]; then
    m=$(grep -hoE '^[^#]*https?://[^[:space:]]+/debian/?([[:space:]]|$)' "${files[@]}" 2>/dev/null \
      | grep -oE 'https?://[^[:space:]]+' | grep -v -- '-security' | head -n1 || true)
    if [ -n "$m" ]; then printf '%s\n' "${m%/}"; return; fi
  fi
  printf '%s\n' http://deb.debian.org/debian
}
