#!/usr/bin/env bash
# Installs plotly.js's basic build (npm plotly.js-basic-dist-min, the version the locked plotly
# package ships) into the .venv, where the dashboard serves it to its graphs instead of the full
# 4.8 MB build (src/rlpad/dashboard/plotly_bundle.py has the pin and the why). Idempotent;
# checks the file's sha256. Optional for build.sh (without npm, or without the registry, the
# dashboard serves the full build); `--require` (test.sh: the tests check it) makes that an error.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0; [ "${1:-}" = --require ] && fail=2
py=.venv/bin/python
read -r pkg ver file sha dest < <($py -c 'from rlpad.dashboard import plotly_bundle as b
print(b.NPM_PACKAGE, b.VERSION, b.FILE, b.SHA256, b.default_path())')
if [ -f "$dest" ] && [ "$(sha256sum "$dest" | cut -d" " -f1)" = "$sha" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "build: no npm here: the dashboard's graphs will load the full plotly.js (slower first visit)" >&2
  exit "$fail"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && npm pack "$pkg@$ver" >npm.log 2>&1 && tar xzf ./*.tgz "package/$file"); then
  tail -n 5 "$tmp/npm.log" >&2 || true
  echo "build: npm could not fetch $pkg@$ver: the dashboard's graphs will load the full plotly.js" >&2
  exit "$fail"
fi
got=$(sha256sum "$tmp/package/$file" | cut -d" " -f1)
if [ "$got" != "$sha" ]; then
  echo "build: $pkg@$ver from npm has sha256 $got, not the pinned $sha: not installed" >&2
  exit 2
fi
mkdir -p "$(dirname "$dest")"
mv "$tmp/package/$file" "$dest.tmp" && mv "$dest.tmp" "$dest"
echo "build: plotly.js basic $ver for the dashboard -> $dest"
