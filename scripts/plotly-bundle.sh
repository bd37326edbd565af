#!/usr/bin/env bash
# Installs plotly.js's basic build (npm plotly.js-basic-dist-min, the version the locked plotly
# package ships) into the .venv, where the dashboard serves it to its graphs instead of the full
# 4.8 MB build (src/rlpad/dashboard/plotly_bundle.py has the pin and the why). Optional: without
# npm the dashboard serves the full build. Idempotent; checks the file's sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
read -r pkg ver sha dest < <($py -c 'from rlpad.dashboard import plotly_bundle as b
print(b.NPM_PACKAGE, b.VERSION, b.SHA256, b.default_path())')
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d" " -f1)" = "$sha" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "build: no npm here: the dashboard's graphs will load the full plotly.js (slower first visit)"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg@$ver" >/dev/null && tar xzf ./*.tgz package/plotly-basic.min.js)
got=$(sha256sum "$tmp/package/plotly-basic.min.js" | cut -d" " -f1)
if [ "$got" != "$sha" ]; then
  echo "build: $pkg@$ver from npm has sha256 $got, not the pinned $sha: not installed" >&2
  exit 2
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/package/plotly-basic.min.js" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "build: plotly.js basic $ver for the dashboard -> $dest"
