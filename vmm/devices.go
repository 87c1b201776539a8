package vmm

import (
	"fmt"
	"log/slog"

	"github.com/xenvmm/xenvmm/devices/blkback"
	"github.com/xenvmm/xenvmm/devices/netback"
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
	for i, vc := range d.opts.Vifs {
		v, err := netback.New(vc, netback.Options{
			DomID: d.domid, Index: i, DomainName: d.opts.Name, ScriptDir: d.opts.VifScriptDir,
			Log: d.log.With("component", "netback"),
		})
		if err != nil {
			return fmt.Errorf("vif[%d]: %w", i, err)
		}
		if err := d.bus.AddWith(v, xenbus.AddOptions{
			DevID: v.DevID(), FrontendNodes: v.FrontendNodes(), ReadOnlyFrontendNodes: v.ReadOnlyFrontendNodes(),
		}); err != nil {
			v.Close()
			return fmt.Errorf("vif[%d] %s: %w", i, v.Name(), err)
		}
		d.log.Info("vif", "name", v.Name(), "mac", v.MAC(), "bridge", vc.Bridge, "devid", v.DevID())
	}
	return nil
}
