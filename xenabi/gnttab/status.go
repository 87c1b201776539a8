package gnttab

import (
	"errors"
	"fmt"

	"github.com/xenvmm/xenvmm/xenabi/abi"
)

// Status is a grant-table status code, enum grant_status
// (xen/include/public/grant_table.h): GNTST_okay or a negative error.
// A non-zero Status is an error; compare with errors.Is(err, StatusX).
type Status int16

// The GNTST_* codes as Status values.
const (
	StatusOkay             Status = abi.GNTST_okay
	StatusGeneralError     Status = abi.GNTST_general_error
	StatusBadDomain        Status = abi.GNTST_bad_domain
	StatusBadGntref        Status = abi.GNTST_bad_gntref
	StatusBadHandle        Status = abi.GNTST_bad_handle
	StatusBadVirtAddr      Status = abi.GNTST_bad_virt_addr
	StatusBadDevAddr       Status = abi.GNTST_bad_dev_addr
	StatusNoDeviceSpace    Status = abi.GNTST_no_device_space
	StatusPermissionDenied Status = abi.GNTST_permission_denied
	StatusBadPage          Status = abi.GNTST_bad_page
	StatusBadCopyArg       Status = abi.GNTST_bad_copy_arg
	StatusAddressTooBig    Status = abi.GNTST_address_too_big
	StatusEagain           Status = abi.GNTST_eagain
	StatusNoSpace          Status = abi.GNTST_no_space
)

// statusMsgs is GNTTABOP_error_msgs, indexed by -status.
var statusMsgs = [...]string{
	"okay",
	"undefined error",
	"unrecognised domain id",
	"invalid grant reference",
	"invalid mapping handle",
	"invalid virtual address",
	"invalid device address",
	"no spare translation slot in the I/O MMU",
	"permission denied",
	"bad page",
	"copy arguments cross page boundary",
	"page address size too large",
	"operation not done; try again",
	"out of space",
}

// Error returns "gnttab: " and the GNTTABOP_error_msgs text.
func (s Status) Error() string { return "gnttab: " + s.msg() }

func (s Status) msg() string {
	if s <= 0 && int(-s) < len(statusMsgs) {
		return statusMsgs[-s]
	}
	return fmt.Sprintf("status %d", int16(s))
}

// ErrUnmapped is returned by Mapping.Unmap for a mapping already unmapped.
var ErrUnmapped = errors.New("gnttab: mapping already unmapped")

// OpError is the error of a backend operation on one grant: which
// operation, which (domain, ref), the GNTST_* status that Xen would have
// returned, and why. errors.Is(err, StatusBadGntref) and the like match
// its Status.
type OpError struct {
	Op     string // "map", "copy from", "copy to"
	Dom    uint16 // granting domain
	Ref    uint32
	Status Status
	Reason string // Xen's gdprintk text, or ""
}

func (e *OpError) Error() string {
	s := fmt.Sprintf("gnttab: %s grant d%d ref %#x: %s", e.Op, e.Dom, e.Ref, e.Status.msg())
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Unwrap returns the Status.
func (e *OpError) Unwrap() error { return e.Status }

// StatusOf returns the GNTST_* code of err: StatusOkay for nil, the Status
// inside err, or StatusGeneralError for any other error.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOkay
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return StatusGeneralError
}
