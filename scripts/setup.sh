#!/usr/bin/env bash
# Installs what xenvmm's build, tests and nested-KVM sandbox need on a
# Debian 12 machine, from Debian's archive only, and caches downloads.
#
#   scripts/setup.sh            # idempotent; a second run takes seconds
#
# Cache: $XENVMM_CACHE, else $XDG_CACHE_HOME/xenvmm, else ~/.cache/xenvmm.
#   apt/      .deb files apt downloaded (reused by later installs)
#   debs/     Debian's linux-image package for the sandbox and the tests
#   kernel/   that package unpacked (boot/vmlinuz-*, lib/modules/*)
set -euo pipefail

cache=${XENVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenvmm}
mkdir -p "$cache/apt/partial" "$cache/debs"

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

# Debian packages: the sandbox (QEMU), test tools (xenstore clients, mke2fs,
# makefs), and gcc for the project's own PV test kernels.
packages=(qemu-system-x86 e2fsprogs makefs xenstore-utils python3-pyxs gcc binutils)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_opts=(-o "Dir::Cache::archives=$cache/apt" -o APT::Sandbox::User=root)
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}" >&2
	$sudo apt-get "${apt_opts[@]}" update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's kernel: boots the sandbox (its kvm_amd gives /dev/kvm under QEMU's
# emulated SVM) and is itself a Xen PV guest (CONFIG_XEN_PV=y) for the tests.
# The version is the point release's (the "bookworm" suite), not
# bookworm-security's newest: a security update must not change what CI
# tests underneath it, and 6.1.192-3 from bookworm-security makes nested
# guests triple-fault at random (docs/design.md, "The sandbox's Debian
# kernel"). $XENVMM_LINUX_VERSION picks another version of
# linux-image-amd64, e.g. 6.1.192-3.
linux_version() {
	if [ -n "${XENVMM_LINUX_VERSION:-}" ]; then
		echo "$XENVMM_LINUX_VERSION"
		return
	fi
	apt-cache madison linux-image-amd64 2>/dev/null |
		awk -F'|' '$3 ~ / bookworm\/main / {gsub(/ /, "", $2); print $2; exit}'
}
kver=$(linux_version)
if [ -z "$kver" ]; then
	$sudo apt-get "${apt_opts[@]}" update -qq
	kver=$(linux_version)
fi
if [ -z "$kver" ]; then
	echo "setup: no linux-image-amd64 in Debian's bookworm suite (is deb.debian.org bookworm in the apt sources?)" >&2
	exit 1
fi
pkg=$(apt-cache depends "linux-image-amd64=$kver" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	echo "setup: apt knows no linux-image-amd64 version $kver" >&2
	exit 1
fi
ver=${pkg#linux-image-}
if [ ! -f "$cache/kernel/boot/vmlinuz-$ver" ]; then
	if ! ls "$cache/debs/${pkg}_"*.deb >/dev/null 2>&1; then
		echo "setup: downloading $pkg" >&2
		(cd "$cache/debs" && apt-get "${apt_opts[@]}" download "$pkg=$kver" 2>&1 | grep -v "^W: Download is performed unsandboxed" >&2 || true)
	fi
	deb=$(ls "$cache/debs/${pkg}_"*.deb | tail -n 1)
	rm -rf "$cache/kernel.tmp"
	dpkg-deb -x "$deb" "$cache/kernel.tmp"
	rm -rf "$cache/kernel"
	mv "$cache/kernel.tmp" "$cache/kernel"
fi
echo "setup: ready ($pkg $kver in $cache/kernel, $(qemu-system-x86_64 --version | head -n 1))" >&2
