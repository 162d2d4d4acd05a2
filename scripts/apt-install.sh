#!/usr/bin/env bash
# Installs Debian packages, saying so; fails clearly when it cannot.
set -euo pipefail
if ! command -v apt-get >/dev/null; then
  echo "cannot install $*: apt-get not found; install it by hand" >&2; exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else echo "cannot install $*: not root and no sudo" >&2; exit 1; fi
fi
echo "==> apt-get install -y $*"
$sudo apt-get update -qq || echo "apt-get update failed; trying the install anyway" >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
