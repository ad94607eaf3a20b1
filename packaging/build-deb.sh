#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: builds out/vaultkeeper_VERSION_ARCH.deb with dpkg-deb from the release binary.
#
#   packaging/build-deb.sh [BINARY] [OUTDIR]
#
# Depends: is computed by dpkg-shlibdeps from the binary's NEEDED libraries (the Swift runtime
# is linked statically, so only Debian libraries remain), plus systemd for the unit. Runs
# lintian afterwards when LINTIAN=1 (the default) and fails on any error or warning (justified overrides, if ever needed, go in
# packaging/debian/lintian-overrides).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/.build/release/vaultkeeper}
OUT=${2:-$ROOT/out}
LINTIAN=${LINTIAN:-1}
[ -x "$BIN" ] || { echo "build-deb.sh: $BIN missing; run make release first" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done

VERSION=$("$BIN" --version)
ARCH=$(dpkg --print-architecture)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
MAINTAINER=$(sed -n 's/^Maintainer: //p' "$ROOT/packaging/debian/control.in")

WORK=$(mktemp -d /tmp/vaultkeeper-deb.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/vaultkeeper
DOC=$PKG/usr/share/doc/vaultkeeper

DESTDIR=$PKG PREFIX=/usr UNITDIR=/lib/systemd/system SYSUSERSDIR=/usr/lib/sysusers.d TMPFILESDIR=/usr/lib/tmpfiles.d \
  CATALOGDIR=/usr/lib/systemd/catalog POLKITDIR=/usr/share/polkit-1/rules.d ZSHDIR=/usr/share/zsh/vendor-completions \
  DOCDIR=/usr/share/doc/vaultkeeper STRIP=1 "$ROOT/packaging/stage.sh" "$BIN"

install -m 0644 "$ROOT/packaging/debian/copyright" "$DOC/copyright"
sed -e "s|@VERSION@|$VERSION|" -e "s|@COMMIT@|$COMMIT|" -e "s|@MAINTAINER@|$MAINTAINER|" \
  -e "s|@DATE@|$(date -u -R -d "@$SOURCE_DATE_EPOCH")|" "$ROOT/packaging/debian/changelog.in" | gzip -9n > "$DOC/changelog.gz"
chmod 0644 "$DOC/changelog.gz"
if [ -s "$ROOT/packaging/debian/lintian-overrides" ]; then
  install -d -m 0755 "$PKG/usr/share/lintian/overrides"
  install -m 0644 "$ROOT/packaging/debian/lintian-overrides" "$PKG/usr/share/lintian/overrides/vaultkeeper"
fi

# Depends: from the libraries the binary really needs (dpkg-shlibdeps wants a debian/control).
mkdir -p "$WORK/src/debian"
printf 'Source: vaultkeeper\n\nPackage: vaultkeeper\nArchitecture: any\n' > "$WORK/src/debian/control"
SHLIBS=$(cd "$WORK/src" && dpkg-shlibdeps -O "$PKG/usr/bin/vaultkeeper" 2>"$WORK/shlibdeps.err" | sed -n 's/^shlibs:Depends=//p') || {
  cat "$WORK/shlibdeps.err" >&2; exit 1; }
[ -n "$SHLIBS" ] || { echo "build-deb.sh: dpkg-shlibdeps found no dependencies" >&2; cat "$WORK/shlibdeps.err" >&2; exit 1; }
case "$SHLIBS" in *swift*) echo "build-deb.sh: the binary needs a Swift runtime library: $SHLIBS" >&2; exit 1;; esac

install -d -m 0755 "$PKG/DEBIAN"
SIZE=$(du -sk --apparent-size "$PKG" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@INSTALLED_SIZE@|$SIZE|" -e "s|@DEPENDS@|$SHLIBS|" \
  "$ROOT/packaging/debian/control.in" > "$PKG/DEBIAN/control"
install -m 0755 "$ROOT/packaging/debian/postinst" "$ROOT/packaging/debian/prerm" "$ROOT/packaging/debian/postrm" "$PKG/DEBIAN/"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/md5sums"
find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
DEB=$OUT/vaultkeeper_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "built $DEB"
echo "  Depends: $(dpkg-deb -f "$DEB" Depends)"

if [ "$LINTIAN" = 1 ]; then
  command -v lintian >/dev/null || { echo "build-deb.sh: lintian missing (apt-get install lintian), or LINTIAN=0" >&2; exit 1; }
  # --fail-on warning: errors and warnings fail the build; info/pedantic are reported only.
  lintian --fail-on error,warning --info --display-info "$DEB"
  echo "lintian: no errors or warnings"
fi
