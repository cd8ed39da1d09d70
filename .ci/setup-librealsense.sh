#!/usr/bin/env bash
# Installs librealsense2 (Intel RealSense SDK, C API) under PREFIX without
# Intel's packages, for `cargo build --features realsense`.
#
# usage: .ci/setup-librealsense.sh PREFIX [WHEEL_VERSION]
#
# The PyPI wheel `pyrealsense2` is a Python extension module that links
# librealsense2 statically and exports every rs2_* symbol of the C API, so
# the module itself can serve as librealsense2.so once it has the right
# soname and its references to CPython symbols resolve: a small stub library
# (libpystub.so) defines those (the C API never calls them). The wheel is
# fetched with pip's platform flags, so the local Python version does not
# matter. realsense-sys ships pre-generated bindings, so no headers are
# needed; it finds the library through pkg-config (PREFIX/lib/pkgconfig).
#
# Idempotent: a PREFIX that already holds this version is left as it is.
# May apt-get install libusb-1.0-0, patchelf, pkg-config and gcc when they
# are missing (CI runs as root on Debian).
# Prints the PKG_CONFIG_PATH export line on stdout.
set -euo pipefail
PREFIX=$(realpath -m "${1:?usage: setup-librealsense.sh PREFIX [WHEEL_VERSION]}")
VER=${2:-2.59.1.11053}
FULL=$(echo "$VER" | cut -d. -f1-3) # 2.59.1
MM=$(echo "$VER" | cut -d. -f1-2)   # 2.59
PYTHON=${PYTHON:-python3}
LIB="$PREFIX/lib/librealsense2.so.$FULL"
PC="$PREFIX/lib/pkgconfig/realsense2.pc"

if [ -f "$LIB" ] && [ -f "$PC" ] && grep -q "^Version: $FULL\$" "$PC"; then
    echo "librealsense2 $FULL already in $PREFIX" >&2
    echo "export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig"
    exit 0
fi

# (grep without -q reads all its input: no SIGPIPE for ldconfig under pipefail)
have_libusb() { ldconfig -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null; }
if ! command -v patchelf >/dev/null || ! command -v pkg-config >/dev/null ||
    ! command -v gcc >/dev/null || ! command -v nm >/dev/null || ! have_libusb; then
    echo "installing libusb-1.0-0 patchelf pkg-config gcc binutils with apt-get" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 patchelf pkg-config gcc binutils >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --platform manylinux1_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 -d "$tmp" "pyrealsense2==$VER" >&2
"$PYTHON" -m zipfile -e "$tmp"/pyrealsense2-*.whl "$tmp/x"
SO=$(ls "$tmp"/x/pyrealsense2/pyrealsense2.cpython-311-*-linux-gnu.so | head -n 1)
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include"

# 1. A stub for the CPython symbols the extension module references.
nm -D --undefined-only "$SO" | awk '{print $2}' | grep -E '^_?Py' |
    sed 's/.*/char &[256] __attribute__((aligned(64)));/' >"$tmp/pystub.c"
gcc -shared -fPIC -o "$PREFIX/lib/libpystub.so" -Wl,-soname,libpystub.so "$tmp/pystub.c"

# 2. The extension module as librealsense2.so.MAJOR.MINOR. One patchelf
#    operation per call: patchelf 0.14 corrupts the file when combining them.
cp "$SO" "$LIB.tmp"
patchelf --set-soname "librealsense2.so.$MM" "$LIB.tmp"
patchelf --add-needed libpystub.so "$LIB.tmp"
patchelf --set-rpath '$ORIGIN' "$LIB.tmp"
mv "$LIB.tmp" "$LIB"
ln -sf "librealsense2.so.$FULL" "$PREFIX/lib/librealsense2.so.$MM"
ln -sf "librealsense2.so.$MM" "$PREFIX/lib/librealsense2.so"

# 3. pkg-config file for realsense-sys; written last, so that a run that
#    failed half-way is redone next time.
cat >"$PC" <<EOF
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include
Name: realsense2
Description: librealsense2 C API taken from the pyrealsense2 $VER wheel
Version: $FULL
Libs: -L\${libdir} -lrealsense2
Cflags: -I\${includedir}
EOF
echo "librealsense2 $FULL installed in $PREFIX" >&2
echo "export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig"
