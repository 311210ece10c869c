#!/usr/bin/env bash
# Installs everything moetrain needs to build, test and run its main job on Debian 12.
# Idempotent and quiet: packages already present are skipped; apt output goes to a log unless it fails.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libopenblas-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev
  libyaml-cpp-dev
  libabsl-dev
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libsentencepiece-dev sentencepiece
  libcli11-dev
  nlohmann-json3-dev
  fortunes
  procps
  python3 python3-matplotlib
  slurm-wlm munge
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
log=$(mktemp /tmp/moetrain-install-deps.XXXXXX.log)
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  echo "install-deps: apt-get failed; log follows" >&2
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
echo "install-deps: done"
