#!/usr/bin/env bash
# A newcomer's first run: set up, build xenvmm, and show what it builds
# for Debian's unmodified Linux kernel (linux-image-amd64, CONFIG_XEN_PV=y)
# and for the NetBSD 5.1 XEN3_DOMU kernel.
#
#   scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/setup.sh
mkdir -p out
go build -o out/xenvmm .
cache=${XENVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenvmm}
vmlinuz=$(ls "$cache"/kernel/boot/vmlinuz-* | tail -n 1)
# The example configs name their kernel relative to nothing machine-specific;
# write copies that point at this machine's kernels.
sed "s|@VMLINUZ@|$vmlinuz|" testdata/examples/debian-linux.cfg > out/debian-linux.cfg
echo "== xenvmm check out/debian-linux.cfg"
out/xenvmm check out/debian-linux.cfg
guests=${XENVMM_GUESTS:-../shared/guests}
if [ -f "$guests/netbsd-5.1-amd64-XEN3_DOMU.gz" ]; then
	sed "s|@GUESTS@|$(cd "$guests" && pwd)|" testdata/examples/netbsd.cfg > out/netbsd.cfg
	echo; echo "== xenvmm check out/netbsd.cfg"
	out/xenvmm check out/netbsd.cfg
fi
