package xenbus

import (
	"strconv"

	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// BackendDomID is the domain of every backend: the VMM acts as domain 0.
const BackendDomID = 0

// BackendPath is libxl__device_backend_path for a backend in domain 0:
// /local/domain/0/backend/<type>/<domid>/<devid>
// (docs/misc/xenstore-paths.pandoc, ~/backend/$TYPE/$DOMID/$DEVID).
func BackendPath(typ string, domid uint16, devid int) string {
	return xenstore.DomainPath(BackendDomID) + "/backend/" + typ + "/" + strconv.Itoa(int(domid)) + "/" + strconv.Itoa(devid)
}

// FrontendPath is libxl__device_frontend_path:
// /local/domain/<domid>/device/<type>/<devid> (~/device/$TYPE/$DEVID).
// Console 0 is the exception libxl makes (~/console); it is not a xenbus
// device here (see Bus.Add).
func FrontendPath(typ string, domid uint16, devid int) string {
	return xenstore.DomainPath(uint32(domid)) + "/device/" + typ + "/" + strconv.Itoa(devid)
}

// LibxlPath is libxl__device_libxl_path: /libxl/<domid>/device/<type>/<devid>,
// where libxl keeps its own copy of the frontend and backend paths
// (xenstore-paths.pandoc, /libxl/$DOMID/device/$KIND/$DEVID).
func LibxlPath(typ string, domid uint16, devid int) string {
	return "/libxl/" + strconv.Itoa(int(domid)) + "/device/" + typ + "/" + strconv.Itoa(devid)
}
