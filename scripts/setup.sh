#!/usr/bin/env bash
# Installs every Debian 12 package that greenring's build, tests and benches need.
# Idempotent: when everything is already installed it never touches apt.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libboost-context1.81-dev libboost-fiber1.81-dev
  liburing-dev libc-ares-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dnsmasq-base wrk curl openssl python3 procps
  perl sqlite3 binutils
)

# One dpkg-query for all packages; anything not reported as "ii" (wanted and
# installed) is missing. Unknown packages print nothing on stdout, so they
# count as missing too.
declare -A installed=()
while read -r name status; do
  [[ $status == ii ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for p in "${packages[@]}"; do
  [[ -n ${installed[$p]:-} ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: not root and sudo is not available; install as root: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}"
echo "setup: done"
