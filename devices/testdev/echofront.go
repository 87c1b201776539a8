package testdev

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/xenvmm/xenvmm/devices/ring"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// WaitTimeout bounds the frontend's waits for the backend.
const WaitTimeout = 10 * time.Second

// EchoFront is the guest's echo frontend driver, written the way Linux's
// blkfront talks to its backend (talk_to_blkback, blkback_changed): it
// finds the backend through its frontend directory, follows the backend's
// state through a watch, publishes its ring and event channel, and
// switches its own state.
type EchoFront struct {
	g          *Guest
	DevID      int
	Dir        string // frontend directory
	BackendDir string
	watch      *XSWatch

	ringGFN uint64
	ringRef uint32
	port    uint32
	front   *ring.Front
	data    []dataPage
}

type dataPage struct {
	gfn  uint64
	page []byte
	ref  uint32
}

// ProbeEcho is the frontend's probe of device/echo/<devid>: it reads the
// backend path from the frontend directory (as the guest may) and
// watches the backend's state node.
func (g *Guest) ProbeEcho(devid int) (*EchoFront, error) {
	dir := xenstore.DomainPath(uint32(g.domid)) + "/device/" + EchoType + "/" + strconv.Itoa(devid)
	be, err := g.xs.Read(dir + "/backend")
	if err != nil {
		return nil, fmt.Errorf("echofront: probe %s: %w", dir, err)
	}
	f := &EchoFront{g: g, DevID: devid, Dir: dir, BackendDir: be}
	f.watch, err = g.xs.Watch(be+"/state", "echofront:"+dir)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// BackendState reads the backend's state node as the guest.
func (f *EchoFront) BackendState() xenbus.State {
	v, err := f.g.xs.Read(f.BackendDir + "/state")
	if err != nil {
		return xenbus.StateUnknown
	}
	return xenbus.ParseState(v)
}

// ErrWait: the backend did not reach the state waited for.
var ErrWait = errors.New("echofront: backend did not reach the state")

// WaitBackend waits until the backend is in one of states, reading the
// state node after each watch event, and returns the state reached.
func (f *EchoFront) WaitBackend(states ...xenbus.State) (xenbus.State, error) {
	deadline := time.Now().Add(WaitTimeout)
	for {
		s := f.BackendState()
		if slices.Contains(states, s) {
			return s, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return s, fmt.Errorf("%w: %v is %v, want %v", ErrWait, f.BackendDir, s, states)
		}
		f.watch.Next(left)
	}
}

// SetState writes the frontend's state node (xenbus_switch_state).
func (f *EchoFront) SetState(s xenbus.State) error {
	return f.g.xs.Write(f.Dir+"/state", s.Value())
}

// Connect brings the device up: wait for InitWait, allocate and grant
// the ring, allocate the event channel, write ring-ref and event-channel,
// switch to Initialised (or straight to Connected with direct, as
// netfront does), wait for the backend's Connected, then Connected.
// dataPages pages are allocated and granted for requests.
func (f *EchoFront) Connect(dataPages int, direct bool) error {
	if _, err := f.WaitBackend(xenbus.StateInitWait); err != nil {
		return err
	}
	if f.front == nil {
		gfn, page, err := f.g.AllocPage()
		if err != nil {
			return err
		}
		f.ringGFN = gfn
		if f.front, err = ring.NewFront(page, EchoSlotSize); err != nil {
			return err
		}
		for range dataPages {
			gfn, page, err := f.g.AllocPage()
			if err != nil {
				return err
			}
			ref, err := f.g.Grant(gfn, false)
			if err != nil {
				return err
			}
			f.data = append(f.data, dataPage{gfn, page, ref})
		}
	} else {
		// Reconnecting: a fresh shared ring on the same page.
		page, _ := f.g.mem.Page(f.ringGFN)
		var err error
		if f.front, err = ring.NewFront(page, EchoSlotSize); err != nil {
			return err
		}
	}
	var err error
	if f.ringRef, err = f.g.Grant(f.ringGFN, false); err != nil {
		return err
	}
	if f.port, err = f.g.AllocUnbound(); err != nil {
		return err
	}
	if err := f.g.xs.Write(f.Dir+"/ring-ref", strconv.FormatUint(uint64(f.ringRef), 10)); err != nil {
		return err
	}
	if err := f.g.xs.Write(f.Dir+"/event-channel", strconv.FormatUint(uint64(f.port), 10)); err != nil {
		return err
	}
	if direct {
		if err := f.SetState(xenbus.StateConnected); err != nil {
			return err
		}
		_, err := f.WaitBackend(xenbus.StateConnected)
		return err
	}
	if err := f.SetState(xenbus.StateInitialised); err != nil {
		return err
	}
	if _, err := f.WaitBackend(xenbus.StateConnected); err != nil {
		return err
	}
	return f.SetState(xenbus.StateConnected)
}

// Close shuts the device down as xenbus_dev_shutdown and blkfront do:
// Closing, wait for the backend to close, Closed, wait for the backend's
// Closed; then the ring grant is ended (which fails if the backend still
// has it mapped) and the port closed.
func (f *EchoFront) Close() error {
	if err := f.SetState(xenbus.StateClosing); err != nil {
		return err
	}
	if _, err := f.WaitBackend(xenbus.StateClosing, xenbus.StateClosed); err != nil {
		return err
	}
	if err := f.SetState(xenbus.StateClosed); err != nil {
		return err
	}
	if _, err := f.WaitBackend(xenbus.StateClosed); err != nil {
		return err
	}
	return f.release()
}

// release ends the ring grant and closes the port.
func (f *EchoFront) release() error {
	var errs []error
	if f.ringRef != 0 {
		errs = append(errs, f.g.EndGrant(f.ringRef))
		f.ringRef = 0
	}
	if f.port != 0 {
		errs = append(errs, f.g.ClosePort(f.port))
		f.port = 0
	}
	return errors.Join(errs...)
}

// Release ends every grant (ring and data pages) and closes the port,
// as a frontend does when its device is unplugged.
func (f *EchoFront) Release() error {
	errs := []error{f.release()}
	for _, d := range f.data {
		errs = append(errs, f.g.EndGrant(d.ref))
	}
	f.data = nil
	f.g.xs.Unwatch(f.BackendDir+"/state", f.watch)
	return errors.Join(errs...)
}

// Ring is the frontend's shared ring.
func (f *EchoFront) Ring() *ring.Front { return f.front }

// Port is the frontend's event-channel port.
func (f *EchoFront) Port() uint32 { return f.port }

// Run exchanges n requests in batches of random size (at most one per
// data page per batch), each over a random span of a data page filled
// with random bytes, and checks every byte of every page after each
// response: the CRC of the original span, the transformed span, and the
// untouched rest. It returns the number of notifications it sent.
func (f *EchoFront) Run(n int, rng *rand.Rand) (kicks int, err error) {
	if f.front == nil || len(f.data) == 0 {
		return 0, errors.New("echofront: not connected")
	}
	maxBatch := min(len(f.data), int(f.front.Size()))
	want := make([][]byte, maxBatch)
	crcs := make([]uint32, maxBatch)
	id := uint64(0)
	for sent := 0; sent < n; {
		batch := 1 + rng.IntN(maxBatch)
		batch = min(batch, n-sent)
		base := id
		for i := 0; i < batch; i++ {
			d := f.data[i]
			off := rng.IntN(4096)
			ln := rng.IntN(4096 - off + 1)
			for j := range d.page {
				d.page[j] = byte(rng.Uint32())
			}
			span := d.page[off : off+ln]
			crcs[i] = crc32.ChecksumIEEE(span)
			w := bytes.Clone(d.page)
			Transform(w[off:off+ln], id)
			want[i] = w
			slot := f.front.RequestSlot()
			if slot == nil {
				return kicks, errors.New("echofront: ring full")
			}
			EchoRequest{ID: id, Gref: d.ref, Offset: uint16(off), Len: uint16(ln)}.Put(slot)
			id++
		}
		if f.front.PushRequests() {
			kicks++
			if err := f.g.Send(f.port); err != nil {
				return kicks, err
			}
		}
		got := 0
		timeout := time.NewTimer(WaitTimeout)
		for got < batch {
			slot, ok := f.front.NextResponse()
			if !ok {
				if f.front.FinalCheckForResponses() {
					continue
				}
				if err := f.front.Err(); err != nil {
					return kicks, err
				}
				select {
				case <-f.g.PortEvents(f.port):
				case <-timeout.C:
					return kicks, fmt.Errorf("echofront: %d of %d responses after %v", got, batch, WaitTimeout)
				}
				continue
			}
			r := GetEchoResponse(slot)
			i := int(r.ID - base)
			if r.ID < base || i >= batch {
				return kicks, fmt.Errorf("echofront: response for unknown id %d (batch %d..%d)", r.ID, base, base+uint64(batch)-1)
			}
			if r.Status != EchoOK {
				return kicks, fmt.Errorf("echofront: request %d failed: %v", r.ID, r)
			}
			if r.CRC != crcs[i] {
				return kicks, fmt.Errorf("echofront: request %d crc %#x, want %#x", r.ID, r.CRC, crcs[i])
			}
			if p := f.data[i].page; !bytes.Equal(p, want[i]) {
				j := 0
				for p[j] == want[i][j] {
					j++
				}
				return kicks, fmt.Errorf("echofront: request %d: page byte %d = %#x, want %#x", r.ID, j, p[j], want[i][j])
			}
			got++
		}
		timeout.Stop()
		sent += batch
	}
	return kicks, nil
}
