package loader

// Linux x86 boot protocol setup header (Documentation/arch/x86/boot.rst),
// the fields Xen's xg_dom_bzimageloader.c reads (struct setup_header).
const (
	bzSetupSects    = 0x1f1 // u8: setup sectors after the boot sector (0 means 4)
	bzHeaderMagic   = 0x202 // "HdrS"
	bzVersion       = 0x206 // u16: boot protocol version
	bzPayloadOffset = 0x248 // u32 (2.08+): payload offset from the protected-mode code
	bzPayloadLength = 0x24c // u32 (2.08+)
	bzHeaderEnd     = 0x250
)

// isBzImage reports whether data has the "HdrS" setup header magic.
func isBzImage(data []byte) bool {
	return len(data) >= bzHeaderMagic+4 && string(data[bzHeaderMagic:bzHeaderMagic+4]) == "HdrS"
}

// bzImagePayload returns the compressed payload of a bzImage: boot
// protocol 2.08 or later describes it by payload_offset and
// payload_length, counted from the protected-mode code at
// (setup_sects+1)*512.
func bzImagePayload(data []byte) ([]byte, error) {
	if len(data) < bzHeaderEnd {
		return nil, malformed("bzImage: truncated setup header (%d bytes)", len(data))
	}
	version := le.Uint16(data[bzVersion:])
	if version < 0x0208 {
		return nil, unsupported("bzImage: boot protocol %d.%02d is older than 2.08, which has no payload_offset to find the kernel ELF by", version>>8, version&0xff)
	}
	sects := uint64(data[bzSetupSects])
	if sects == 0 {
		sects = 4
	}
	off := (sects+1)*512 + uint64(le.Uint32(data[bzPayloadOffset:]))
	n := uint64(le.Uint32(data[bzPayloadLength:]))
	if off >= uint64(len(data)) {
		return nil, malformed("bzImage: payload offset %#x is past the end of the file (%#x)", off, len(data))
	}
	if n > uint64(len(data))-off {
		return nil, malformed("bzImage: payload (offset %#x, length %#x) runs past the end of the file (%#x)", off, n, len(data))
	}
	return data[off : off+n], nil
}
