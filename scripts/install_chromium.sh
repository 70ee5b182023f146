#!/usr/bin/env bash
# Install Debian's chromium, the browser the app's real-browser test drives through Playwright
# (Playwright's own browser download needs hosts this project cannot assume). Needs apt-get and
# root (or sudo); does nothing when /usr/bin/chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "error: the browser test needs Debian's chromium at /usr/bin/chromium; install it" \
         "with your system's package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "Installing chromium (Debian package) for the app's browser test..."
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium fonts-liberation >/dev/null
/usr/bin/chromium --version
