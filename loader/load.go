package loader

import (
	"fmt"
	"io"
	"os"
)

// MaxSize bounds the size of a kernel file and of any decompressed
// image: 1 GiB, well above any real kernel (Debian's 6.1 ELF is 63 MiB),
// so that a damaged or hostile image cannot exhaust memory.
const MaxSize = 1 << 30

// LoadFile reads the kernel at path (ELF, compressed ELF or bzImage) and
// returns it laid out as a Xen PV guest kernel. Errors are *Error values
// naming path.
func LoadFile(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	if len(data) > MaxSize {
		return nil, &Error{Path: path, Err: &reason{fmt.Sprintf("file is larger than %d MiB", MaxSize>>20), ErrTooLarge}}
	}
	return Load(path, data)
}

// Load is LoadFile for a kernel already in memory; name is used in
// errors and Image.Name. The Image's segments alias data (or the
// decompressed copy of it).
func Load(name string, data []byte) (*Image, error) {
	return load(name, data, MaxSize)
}

func load(name string, data []byte, limit int64) (*Image, error) {
	format, elfData, err := unpack(data, limit, 0)
	if err != nil {
		return nil, &Error{Path: name, Err: err}
	}
	f, err := parseELF(elfData)
	if err != nil {
		return nil, &Error{Path: name, Err: err}
	}
	img, err := fromELF(name, format, f)
	if err != nil {
		return nil, &Error{Path: name, Err: err}
	}
	return img, nil
}

// unpack finds the ELF inside data: data itself, the payload of a
// bzImage, or the content of a compressed file (one level deep, as
// libxc's xc_dom_try_gunzip before its probes).
func unpack(data []byte, limit int64, depth int) (Format, []byte, error) {
	switch {
	case isELF(data):
		return "elf", data, nil
	case isBzImage(data):
		payload, err := bzImagePayload(data)
		if err != nil {
			return "", nil, err
		}
		c, ok := detectCompression(payload)
		if !ok {
			return "", nil, unsupported("bzImage: unknown payload compression (magic % x)", payload[:min(len(payload), 6)])
		}
		// Linux appends the uncompressed size, as 32 bits little-endian,
		// to every payload format but gzip (whose trailer has it).
		var hint uint64
		if c != compGzip && len(payload) >= 4 {
			hint = uint64(le.Uint32(payload[len(payload)-4:]))
			payload = payload[:len(payload)-4]
		}
		inner, err := decompress(c, payload, hint, limit)
		if err != nil {
			return "", nil, fmt.Errorf("bzImage payload: %w", err)
		}
		if !isELF(inner) {
			return "", nil, malformed("bzImage: the %s payload is not an ELF image", c)
		}
		return Format("bzImage+" + string(c)), inner, nil
	}
	if c, ok := detectCompression(data); ok && depth == 0 {
		inner, err := decompress(c, data, 0, limit)
		if err != nil {
			return "", nil, err
		}
		format, elfData, err := unpack(inner, limit, depth+1)
		if err != nil {
			return "", nil, fmt.Errorf("inside %s: %w", c, err)
		}
		return Format(string(c)+"+") + format, elfData, nil
	}
	return "", nil, malformed("not a kernel image: neither ELF, nor Linux bzImage, nor a compressed ELF (starts % x)", data[:min(len(data), 8)])
}
