#!/usr/bin/env bash
# Print the path of a CPython interpreter of the given minor version (e.g. 3.9), or nothing.
# Looks at pyenv's versions first (these machines keep 3.9 and 3.13 there), then at PATH.
set -u
want="$1"
root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in $(ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -V -r); do
  [ -x "$p" ] && { echo "$p"; exit 0; }
done
if command -v "python$want" >/dev/null 2>&1; then
  p=$(command -v "python$want")
  "$p" -c 'import sys' >/dev/null 2>&1 && { echo "$p"; exit 0; }
fi
exit 0
