#!/usr/bin/env bash
# Install wick into a temporary folder and build examples/hello.c against it with
# pkg-config, as a user would: proves the headers, the library and wick.pc work.
#   check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp" --no-rebuild --quiet >/dev/null
opt() {
    meson introspect "$build" --buildoptions | python3 -c \
        'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"
}
prefix=$(opt prefix)
san=$(opt sanitize)
extra=""
[ "$san" != none ] && extra="-fsanitize=$san"
pcdir=$(dirname "$(find "$tmp" -name wick.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$tmp$prefix" \
        --cflags --libs wick)
libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --define-variable=prefix="$tmp$prefix" \
         --variable=libdir wick)
cc -std=gnu11 -Wall -Wextra -Werror $extra "$src/examples/hello.c" $flags -Wl,-rpath,"$libdir" \
    -o "$tmp/hello"
out=$("$tmp/hello")
echo "$out"
case "$out" in
    "tensor([["*) echo "1 passed, 0 failed" ;;
    *) echo "hello printed no tensor"; exit 1 ;;
esac
