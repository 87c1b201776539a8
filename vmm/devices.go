package vmm

import (
	"fmt"
	"log/slog"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/xenstore"
)

// The domain as the split-driver backends see it (xenbus.Host): they are
// domain 0, in this process.

// hostView implements xenbus.Host for the domain.
type hostView struct{ d *Domain }

func (h hostView) DomID() uint16              { return h.d.domid }
func (h hostView) Grants() xenbus.GrantMapper { return h.d.grants }
func (h hostView) Events() xenbus.EventBinder { return h.d.events }
func (h hostView) Store() *xenstore.Client    { return h.d.xs.NewClient() }
func (h hostView) Log() *slog.Logger          { return h.d.log.With("component", "devices") }

// setupDevices creates the xenbus bus (after the domain's xenstore tree
// exists) and adds the configured devices.
func (d *Domain) setupDevices() error {
	d.bus = xenbus.NewBus(hostView{d})
	for i, disk := range d.opts.Disks {
		dev, err := blkback.New(disk, blkback.Options{Log: d.log.With("disk", disk.VDev)})
		if err != nil {
			return fmt.Errorf("disk[%d] %s: %w", i, disk.Target, err)
		}
		if err := d.bus.Add(dev, int(dev.DevID()), dev.FrontendNodes()); err != nil {
			dev.Close()
			return fmt.Errorf("disk[%d] %s: %w", i, disk.Target, err)
		}
		d.log.Info("disk", "target", disk.Target, "vdev", disk.VDev, "devid", dev.DevID(), "readonly", disk.ReadOnly)
	}
	return nil
}
