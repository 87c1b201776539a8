// Package guestxenbus is the xenstore client of the project's Linux test
// guests (testdata/guestprogs): it talks through /dev/xen/xenbus, the
// device of Linux's xenbus_dev_frontend, with the xsd_sockmsg messages of
// xen/include/public/io/xs_wire.h. Paths without a leading "/" are
// relative to the guest's /local/domain/<id>, as under Xen.
package guestxenbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Message types (enum xsd_sockmsg_type).
const (
	xsRead  = 2
	xsWrite = 11
	xsError = 16
)

// Conn is one xenstore connection.
type Conn struct {
	rw    io.ReadWriter
	reqID uint32
}

// New returns a connection over rw (an open /dev/xen/xenbus, or a test's
// pipe).
func New(rw io.ReadWriter) *Conn { return &Conn{rw: rw} }

// Open opens /dev/xen/xenbus, waiting up to 5 s for devtmpfs to create it.
func Open() (*Conn, error) {
	var err error
	for try := 0; try < 100; try++ {
		var f *os.File
		if f, err = os.OpenFile("/dev/xen/xenbus", os.O_RDWR, 0); err == nil {
			return New(f), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

// call sends one request and returns its reply's payload; an XS_ERROR
// reply is an error naming the errno string.
func (c *Conn) call(typ uint32, payload []byte) (string, error) {
	c.reqID++
	msg := make([]byte, 16+len(payload))
	binary.LittleEndian.PutUint32(msg[0:], typ)
	binary.LittleEndian.PutUint32(msg[4:], c.reqID)
	binary.LittleEndian.PutUint32(msg[12:], uint32(len(payload)))
	copy(msg[16:], payload)
	if _, err := c.rw.Write(msg); err != nil {
		return "", err
	}
	var hdr [16]byte
	if _, err := io.ReadFull(c.rw, hdr[:]); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(hdr[12:])
	if n > 4096 {
		return "", fmt.Errorf("xenstore reply of %d bytes (XENSTORE_PAYLOAD_MAX is 4096)", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.rw, body); err != nil {
		return "", err
	}
	s := strings.TrimRight(string(body), "\x00")
	if binary.LittleEndian.Uint32(hdr[0:]) == xsError {
		return "", errors.New(s)
	}
	return s, nil
}

// Read returns the value of path.
func (c *Conn) Read(path string) (string, error) {
	return c.call(xsRead, append([]byte(path), 0))
}

// Write sets path to value.
func (c *Conn) Write(path, value string) error {
	_, err := c.call(xsWrite, append(append([]byte(path), 0), value...))
	return err
}
