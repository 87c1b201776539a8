#!/usr/bin/env bash
# A newcomer's first run: set up, build xenvmm, and boot Debian's
# unmodified Linux kernel (linux-image-amd64, CONFIG_XEN_PV=y) as a Xen PV
# guest to a small userspace that checks the machine and powers off. On a
# host without a usable /dev/kvm the guest runs inside the nested-KVM
# sandbox (QEMU TCG -cpu max + kvm_amd); set XENVMM_HOST_KVM=1 to use the
# host's /dev/kvm directly.
#
#   scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
scripts/setup.sh
mkdir -p out
export CGO_ENABLED=0
go build -o out/xenvmm .
go build -o out/xenvmm-sandbox ./cmd/xenvmm-sandbox
go build -o out/linuxinit ./testdata/guestprogs/linuxinit
out/xenvmm-sandbox initramfs --init out/linuxinit -o out/demo-initrd.gz
cache=${XENVMM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xenvmm}
vmlinuz=$(ls "$cache"/kernel/boot/vmlinuz-* | tail -n 1)

echo "== xenvmm check: what xenvmm builds for Debian's kernel"
sed -e "s|@VMLINUZ@|$vmlinuz|" -e "s|@RAMDISK@|$PWD/out/demo-initrd.gz|" testdata/examples/debian-linux.cfg > out/debian-linux.cfg
out/xenvmm check out/debian-linux.cfg

echo
echo "== xenvmm run: boot it"
if [ "${XENVMM_HOST_KVM:-}" = 1 ]; then
	out/xenvmm run out/debian-linux.cfg
else
	sed -e "s|@VMLINUZ@|/sandbox/data/vmlinuz|" -e "s|@RAMDISK@|/sandbox/files/demo-initrd.gz|" testdata/examples/debian-linux.cfg > out/debian-linux-sandbox.cfg
	out/xenvmm-sandbox exec -f out/xenvmm -f out/demo-initrd.gz -f out/debian-linux-sandbox.cfg:/sandbox/files/debian-linux.cfg -- \
		/sandbox/files/xenvmm run --trace-hypercalls /sandbox/files/debian-linux.cfg
fi
