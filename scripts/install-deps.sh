#!/usr/bin/env bash
# Installs the Debian packages wikv needs when they are missing: as root it runs apt-get, otherwise it
# prints the apt-get line to run and fails.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libsqlite3-dev sqlite3 check gnuplot-nox parallel clang valgrind)
if [ "${WIKV_WITH_NS3:-1}" = 1 ]; then pkgs+=(libns3-dev libgsl-dev); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "wikv needs: apt-get install -y ${missing[*]}" >&2
  echo "run that as root (or with sudo), then try again" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
