#!/bin/sh
# Regenerates the compressed fixtures of compress_test.go from the
# deterministic payload of genpayload, with the real tools, the way Linux's
# arch/x86/boot/compressed/Makefile and scripts/xz_wrap.sh compress a
# bzImage payload: every format but gzip gets the uncompressed size
# appended as 32 bits little-endian (size_append).
# Needs: go, gzip, bzip2, xz, lz4, zstd.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./genpayload >"$tmp/payload"
size_append() { printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(( $1 & 255 )) $(( ($1 >> 8) & 255 )) $(( ($1 >> 16) & 255 )) $(( ($1 >> 24) & 255 )))"; }
n=$(wc -c <"$tmp/payload")
gzip -n -9 -c "$tmp/payload" >payload.gz
{ bzip2 -9 -c "$tmp/payload"; size_append "$n"; } >payload.bz2
{ xz --check=crc32 --x86 --lzma2=dict=1MiB -c "$tmp/payload"; size_append "$n"; } >payload-x86.xz
{ xz --check=crc64 --block-size=3000 --x86 --lzma2=dict=64KiB -c "$tmp/payload"; size_append "$n"; } >payload-x86-blocks.xz
{ xz --check=sha256 -c "$tmp/payload"; size_append "$n"; } >payload-sha256.xz
{ xz --format=lzma -9 -c "$tmp/payload"; size_append "$n"; } >payload.lzma
{ lz4 -l -9 -c "$tmp/payload"; size_append "$n"; } >payload.lz4
{ zstd -q -19 -c "$tmp/payload"; size_append "$n"; } >payload.zst
sha256sum "$tmp/payload" | cut -d' ' -f1
