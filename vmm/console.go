package vmm

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/xenvmm/xenvmm/xenabi/abi"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
	"github.com/xenvmm/xenvmm/xenabi/guestmem"
)

// console is the domain's console backend: HYPERVISOR_console_io writes
// and the PV console ring (xen/include/public/io/console.h struct
// xencons_interface) on the page start_info.console.domU.mfn names, with
// its event channel. Output goes to one writer in arrival order; input
// from the reader feeds the ring.
type console struct {
	d  *Domain
	ep *evtchn.Endpoint

	// mu guards out and the ring indices' consumer side.
	mu   sync.Mutex
	out  io.Writer
	ring []byte
}

func newConsole(d *Domain, out io.Writer) *console { return &console{d: d, out: out} }

func (c *console) write(p []byte) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
}

// setRing binds the ring page the builder placed.
func (c *console) setRing(pfn uint64) error {
	page, err := c.d.space.Page(pfn)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.ring = page
	c.mu.Unlock()
	return nil
}

// allocPort connects the console's event channel and returns the guest's
// port (start_info.console.domU.evtchn).
func (c *console) allocPort() (uint32, error) {
	ep, err := c.d.events.AllocBackend(func(ep *evtchn.Endpoint, ev evtchn.EndpointEvent) {
		if ev == evtchn.EndpointNotifiedEvent {
			c.drain()
		}
	})
	if err != nil {
		return 0, err
	}
	c.ep = ep
	_, port := ep.State()
	return port, nil
}

// drain copies what the guest wrote to the output ring (out_cons ..
// out_prod) to the writer and tells the guest.
func (c *console) drain() {
	c.mu.Lock()
	if c.ring == nil {
		c.mu.Unlock()
		return
	}
	prod, _ := guestmem.Load32(c.ring, abi.XenconsOutProd)
	cons, _ := guestmem.Load32(c.ring, abi.XenconsOutCons)
	n := prod - cons
	if n > abi.XenconsOutSize {
		// The guest broke the ring protocol: resynchronize.
		n = abi.XenconsOutSize
		cons = prod - n
	}
	if n == 0 {
		c.mu.Unlock()
		return
	}
	buf := make([]byte, n)
	for i := uint32(0); i < n; i++ {
		buf[i] = c.ring[abi.XenconsInterfaceOut+int((cons+i)%abi.XenconsOutSize)]
	}
	c.out.Write(buf)
	guestmem.Store32(c.ring, abi.XenconsOutCons, prod)
	c.mu.Unlock()
	c.ep.Notify()
}

// input puts bytes into the guest's input ring, as many as fit, and
// returns how many.
func (c *console) input(p []byte) int {
	c.mu.Lock()
	if c.ring == nil {
		c.mu.Unlock()
		return 0
	}
	prod, _ := guestmem.Load32(c.ring, abi.XenconsInProd)
	cons, _ := guestmem.Load32(c.ring, abi.XenconsInCons)
	free := abi.XenconsInSize - (prod - cons)
	if free > abi.XenconsInSize {
		free = 0
	}
	n := min(uint32(len(p)), free)
	for i := uint32(0); i < n; i++ {
		c.ring[abi.XenconsInterfaceIn+int((prod+i)%abi.XenconsInSize)] = p[i]
	}
	guestmem.Store32(c.ring, abi.XenconsInProd, prod+n)
	c.mu.Unlock()
	if n > 0 {
		c.ep.Notify()
	}
	return int(n)
}

// start feeds ConsoleIn to the ring until ctx ends.
func (c *console) start(ctx context.Context) {
	in := c.d.opts.ConsoleIn
	if in == nil {
		return
	}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := in.Read(buf)
			p := buf[:n]
			for len(p) > 0 {
				k := c.input(p)
				p = p[k:]
				if len(p) > 0 {
					select {
					case <-ctx.Done():
						return
					case <-c.d.done:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

// flush drains what is left in the ring when the domain stops.
func (c *console) flush() { c.drain() }
