// Command genpayload writes the deterministic 8 KiB test payload that
// gen.sh compresses: x86-like bytes dense with E8 (CALL) and E9 (JMP)
// rel32 instructions, so that the x86 BCJ filter has work to do.
package main

import (
	"encoding/binary"
	"os"
)

func main() {
	const size = 8 << 10
	out := make([]byte, 0, size+8)
	x := uint32(0x2545f491)
	rnd := func() uint32 { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return x }
	for len(out) < size {
		switch r := rnd() % 8; {
		case r < 3: // call/jmp rel32, a near target (high byte 00 or FF)
			op := byte(0xe8 + rnd()%2)
			rel := int32(rnd()%0x20000) - 0x10000
			out = append(out, op)
			out = binary.LittleEndian.AppendUint32(out, uint32(rel))
		case r < 4: // an E8 byte that is not a call (far "target")
			out = append(out, 0xe8, byte(rnd()), byte(rnd()), byte(rnd()), 0x42)
		default: // common opcodes and modrm bytes
			ops := []byte{0x48, 0x89, 0x8b, 0xc3, 0x90, 0x55, 0x5d, 0x31, 0xc0, 0x0f, 0x1f, 0x44, 0x00}
			out = append(out, ops[rnd()%uint32(len(ops))])
		}
	}
	os.Stdout.Write(out[:size])
}
