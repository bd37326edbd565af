#!/usr/bin/env bash
# The dashboard's browser tests need a real headless Chromium and its driver: Debian's
# chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver). Installs them with
# apt-get when missing (as root); never a driver manager's download.
# npm too: scripts/plotly-bundle.sh fetches the plotly.js build the dashboard serves with it.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || need+=(chromium chromium-driver)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} = 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing Debian's ${need[*]} (apt-get)"
  apt-get -o DPkg::Lock::Timeout=600 update -qq  # build.sh may be installing Java beside it
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
else
  echo "browser: the dashboard tests need ${need[*]}: apt-get install ${need[*]} (as root)" >&2
  exit 2
fi
