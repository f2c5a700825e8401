#!/usr/bin/env bash
# Debian packages the test suite runs against for real: a PostgreSQL server (journal
# store tests) and Chromium (the web UI's browser test). Installed only when missing;
# `make test` calls this once per virtual environment.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
echo "Installing Debian packages: ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install ${need[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
