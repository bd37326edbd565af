#!/usr/bin/env bash
# The dashboard's browser tests need a real headless Chromium and its driver: Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Installs them with
# apt-get when missing (as root); never a driver manager's download.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium and chromium-driver (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "browser: the dashboard tests need chromium and chromium-driver:" \
       "apt-get install chromium chromium-driver (as root)" >&2
  exit 2
fi
