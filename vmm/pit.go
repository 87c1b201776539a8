package vmm

import (
	"sync"
	"time"
)

// Port I/O for a PV guest with I/O privilege (PHYSDEVOP_set_iopl): there
// are no devices behind ports, except channel 2 of the i8254 PIT and the
// speaker gate at port 0x61, which Xen emulates for PV guests
// (pv_pit_handler in xen/arch/x86/emul-i8254.c) because Linux calibrates
// its TSC against them. Every other read returns all ones.

const pitHz = 1193182

// pit2 is PIT channel 2.
type pit2 struct {
	mu      sync.Mutex
	mode    uint8 // operating mode (control word bits 1-3)
	rw      uint8 // access: 1 lo, 2 hi, 3 lo then hi
	reload  uint16
	start   time.Time // when counting began (gate rising / reload written)
	gate    bool
	spk     bool
	writeHi bool // next write of a lo/hi pair is the high byte
	readHi  bool
	latched bool
	latch   uint16
}

func (p *pit2) count() uint16 {
	if !p.gate || p.start.IsZero() {
		return p.reload
	}
	n := uint64(p.reload)
	if n == 0 {
		n = 65536
	}
	ticks := uint64(time.Since(p.start)) * pitHz / uint64(time.Second)
	switch p.mode {
	case 0, 1: // one-shot: counts down to 0 then wraps
		if ticks >= n {
			return uint16(65536 - (ticks-n)%65536)
		}
		return uint16(n - ticks)
	}
	return uint16(n - ticks%n) // periodic modes
}

func (p *pit2) out() bool {
	if !p.gate || p.start.IsZero() {
		return false
	}
	n := uint64(p.reload)
	if n == 0 {
		n = 65536
	}
	ticks := uint64(time.Since(p.start)) * pitHz / uint64(time.Second)
	switch p.mode {
	case 0:
		return ticks >= n
	case 2:
		return ticks%n != n-1
	case 3:
		return ticks%n < n/2
	}
	return true
}

func (d *Domain) ioRead(port uint16) uint64 {
	p := &d.pit
	p.mu.Lock()
	defer p.mu.Unlock()
	switch port {
	case 0x42:
		c := p.count()
		if p.latched {
			c = p.latch
		}
		var b uint8
		switch p.rw {
		case 1:
			b = uint8(c)
		case 2:
			b = uint8(c >> 8)
		default:
			if p.readHi {
				b = uint8(c >> 8)
				p.latched = false
			} else {
				b = uint8(c)
			}
			p.readHi = !p.readHi
		}
		return uint64(b)
	case 0x61:
		v := uint64(0)
		if p.gate {
			v |= 1
		}
		if p.spk {
			v |= 2
		}
		if p.out() {
			v |= 0x20
		}
		return v
	}
	return ^uint64(0)
}

func (d *Domain) ioWrite(port uint16, val uint64) {
	p := &d.pit
	p.mu.Lock()
	defer p.mu.Unlock()
	switch port {
	case 0x43:
		if val>>6&3 != 2 { // only channel 2
			return
		}
		if val>>4&3 == 0 { // counter latch
			p.latch, p.latched, p.readHi = p.count(), true, false
			return
		}
		p.rw = uint8(val >> 4 & 3)
		p.mode = uint8(val >> 1 & 7)
		p.writeHi, p.readHi, p.latched = false, false, false
	case 0x42:
		b := uint16(val & 0xff)
		switch p.rw {
		case 1:
			p.reload = p.reload&0xff00 | b
		case 2:
			p.reload = p.reload&0xff | b<<8
		default:
			if p.writeHi {
				p.reload = p.reload&0xff | b<<8
			} else {
				p.reload = p.reload&0xff00 | b
			}
			p.writeHi = !p.writeHi
			if p.writeHi {
				return // wait for the high byte
			}
		}
		p.start = time.Now()
	case 0x61:
		gate := val&1 != 0
		if gate && !p.gate {
			p.start = time.Now()
		}
		p.gate = gate
		p.spk = val&2 != 0
	}
}
