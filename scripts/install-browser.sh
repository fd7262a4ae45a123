#!/usr/bin/env bash
# Installs Debian's Chromium for the admin UI's browser tests (Playwright drives it through
# executable_path=/usr/bin/chromium; `playwright install` is never used: it downloads a browser).
# Does nothing when /usr/bin/chromium is there. Runs as root in CI; elsewhere it uses sudo.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: /usr/bin/chromium is missing and apt-get is not available;" \
         "install Chromium with your package manager" >&2
    exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q chromium fonts-dejavu-core
test -x /usr/bin/chromium
