#!/usr/bin/env bash
# Install wick into a temporary folder, copy examples/standalone out of the tree and build
# it there with its Makefile and pkg-config, as a user would: `make` (libwick.so) and
# `make static` (libwick.a with wick.pc's private requirements); then run both programs,
# which train with the Runner and fail below their accuracy threshold.
#   check_standalone.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
opt() {
    meson introspect "$build" --buildoptions | python3 -c 'import json, sys
print([o["value"] for o in json.load(sys.stdin) if o["name"] == sys.argv[1]][0])' "$1"
}
prefix=$(opt prefix)
san=$(opt sanitize)
extra=""
[ "$san" != none ] && extra="-fsanitize=$san"
pcdir=$(dirname "$(find "$tmp/root" -name wick.pc | head -n 1)")
# relocated as a user moving an install would: the files are under DESTDIR, not at the
# prefix wick.pc names (--define-variable would change every package's prefix)
sed -i "s|^prefix=.*|prefix=$tmp/root$prefix|" "$pcdir/wick.pc"
export PKG_CONFIG_PATH="$pcdir"
libdir=$(pkg-config --variable=libdir wick)
echo "wick.pc: $(grep -E '^(Requires|Libs)' "$pcdir/wick.pc" | tr '\n' ' ')"
cp -r "$src/examples/standalone" "$tmp/project"
make -C "$tmp/project" --no-print-directory \
    CFLAGS="-O2 -Wall -Wextra -Werror $extra" LDFLAGS="$extra -Wl,-rpath,$libdir" \
    train train-static
needs_wick() { readelf -d "$1" | grep -q 'NEEDED.*libwick\.so'; }
needs_wick "$tmp/project/train" || { echo "train is not linked with libwick.so"; exit 1; }
if needs_wick "$tmp/project/train-static"; then
    echo "train-static is linked with libwick.so, not libwick.a"
    exit 1
fi
cd "$tmp/project"
export WK_NUM_THREADS=${WK_NUM_THREADS:-2}
./train
./train-static
echo "2 passed, 0 failed"
