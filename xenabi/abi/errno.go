package abi

// Xen error numbers (xen/include/public/errno.h). Hypercalls return the
// negated value in RAX.

// Errno is a Xen error number (positive).
type Errno int

const (
	EPERM         Errno = 1   // Operation not permitted
	ENOENT        Errno = 2   // No such file or directory
	ESRCH         Errno = 3   // No such process
	EINTR         Errno = 4   // Interrupted system call
	EIO           Errno = 5   // I/O error
	ENXIO         Errno = 6   // No such device or address
	E2BIG         Errno = 7   // Arg list too long
	ENOEXEC       Errno = 8   // Exec format error
	EBADF         Errno = 9   // Bad file number
	ECHILD        Errno = 10  // No child processes
	EAGAIN        Errno = 11  // Try again
	EWOULDBLOCK   Errno = 11  // Operation would block.  Aliases EAGAIN
	ENOMEM        Errno = 12  // Out of memory
	EACCES        Errno = 13  // Permission denied
	EFAULT        Errno = 14  // Bad address
	EBUSY         Errno = 16  // Device or resource busy
	EEXIST        Errno = 17  // File exists
	EXDEV         Errno = 18  // Cross-device link
	ENODEV        Errno = 19  // No such device
	ENOTDIR       Errno = 20  // Not a directory
	EISDIR        Errno = 21  // Is a directory
	EINVAL        Errno = 22  // Invalid argument
	ENFILE        Errno = 23  // File table overflow
	EMFILE        Errno = 24  // Too many open files
	ENOSPC        Errno = 28  // No space left on device
	EROFS         Errno = 30  // Read-only file system
	EMLINK        Errno = 31  // Too many links
	EDOM          Errno = 33  // Math argument out of domain of func
	ERANGE        Errno = 34  // Math result not representable
	EDEADLK       Errno = 35  // Resource deadlock would occur
	EDEADLOCK     Errno = 35  // Resource deadlock would occur. Aliases EDEADLK
	ENAMETOOLONG  Errno = 36  // File name too long
	ENOLCK        Errno = 37  // No record locks available
	ENOSYS        Errno = 38  // Function not implemented
	ENOTEMPTY     Errno = 39  // Directory not empty
	ENODATA       Errno = 61  // No data available
	ETIME         Errno = 62  // Timer expired
	EBADMSG       Errno = 74  // Not a data message
	EOVERFLOW     Errno = 75  // Value too large for defined data type
	EILSEQ        Errno = 84  // Illegal byte sequence
	ERESTART      Errno = 85  // Interrupted system call should be restarted
	ENOTSOCK      Errno = 88  // Socket operation on non-socket
	EMSGSIZE      Errno = 90  // Message too large.
	EOPNOTSUPP    Errno = 95  // Operation not supported on transport endpoint
	EADDRINUSE    Errno = 98  // Address already in use
	EADDRNOTAVAIL Errno = 99  // Cannot assign requested address
	ENOBUFS       Errno = 105 // No buffer space available
	EISCONN       Errno = 106 // Transport endpoint is already connected
	ENOTCONN      Errno = 107 // Transport endpoint is not connected
	ETIMEDOUT     Errno = 110 // Connection timed out
	ECONNREFUSED  Errno = 111 // Connection refused
)

var errnoNames = map[Errno]string{
	EPERM:         "EPERM",
	ENOENT:        "ENOENT",
	ESRCH:         "ESRCH",
	EINTR:         "EINTR",
	EIO:           "EIO",
	ENXIO:         "ENXIO",
	E2BIG:         "E2BIG",
	ENOEXEC:       "ENOEXEC",
	EBADF:         "EBADF",
	ECHILD:        "ECHILD",
	EAGAIN:        "EAGAIN",
	ENOMEM:        "ENOMEM",
	EACCES:        "EACCES",
	EFAULT:        "EFAULT",
	EBUSY:         "EBUSY",
	EEXIST:        "EEXIST",
	EXDEV:         "EXDEV",
	ENODEV:        "ENODEV",
	ENOTDIR:       "ENOTDIR",
	EISDIR:        "EISDIR",
	EINVAL:        "EINVAL",
	ENFILE:        "ENFILE",
	EMFILE:        "EMFILE",
	ENOSPC:        "ENOSPC",
	EROFS:         "EROFS",
	EMLINK:        "EMLINK",
	EDOM:          "EDOM",
	ERANGE:        "ERANGE",
	EDEADLK:       "EDEADLK",
	ENAMETOOLONG:  "ENAMETOOLONG",
	ENOLCK:        "ENOLCK",
	ENOSYS:        "ENOSYS",
	ENOTEMPTY:     "ENOTEMPTY",
	ENODATA:       "ENODATA",
	ETIME:         "ETIME",
	EBADMSG:       "EBADMSG",
	EOVERFLOW:     "EOVERFLOW",
	EILSEQ:        "EILSEQ",
	ERESTART:      "ERESTART",
	ENOTSOCK:      "ENOTSOCK",
	EMSGSIZE:      "EMSGSIZE",
	EOPNOTSUPP:    "EOPNOTSUPP",
	EADDRINUSE:    "EADDRINUSE",
	EADDRNOTAVAIL: "EADDRNOTAVAIL",
	ENOBUFS:       "ENOBUFS",
	EISCONN:       "EISCONN",
	ENOTCONN:      "ENOTCONN",
	ETIMEDOUT:     "ETIMEDOUT",
	ECONNREFUSED:  "ECONNREFUSED",
}

// Error makes an Errno an error: "xen: ENOENT".
func (e Errno) Error() string {
	if n, ok := errnoNames[e]; ok {
		return "xen: " + n
	}
	return "xen: errno " + itoa(int(e))
}

// Name is the errno's symbolic name ("ENOENT"), as xenstore's wire
// protocol spells errors.
func (e Errno) Name() string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return "E" + itoa(int(e))
}

// Ret is the hypercall return value for the error: -errno.
func (e Errno) Ret() uint64 { return uint64(-int64(e)) }

func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
