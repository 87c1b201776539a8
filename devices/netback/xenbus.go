package netback

import (
	"context"

	"github.com/xenvmm/xenvmm/devices/xenbus"
	"github.com/xenvmm/xenvmm/xenabi/evtchn"
)

var _ xenbus.Device = (*Vif)(nil)

// Connect is called by the xenbus Bus when the frontend is Initialised or
// Connected (netfront goes straight to Connected): it negotiates as
// described at connect, maps the rings from the frontend's grants, binds
// the event channels and starts the queues.
func (v *Vif) Connect(ctx context.Context, fe *xenbus.Frontend) error {
	return v.connect(ctx, xenbusPort{fe})
}

// xenbusPort is the frontendPort of a xenbus Frontend.
type xenbusPort struct{ fe *xenbus.Frontend }

func (p xenbusPort) DomID() uint16 { return p.fe.DomID() }

func (p xenbusPort) Read(node string) (string, error) { return p.fe.Read(node) }

func (p xenbusPort) MapRing(node string) ([]byte, func() error, error) {
	m, err := p.fe.MapGrant(node, false)
	if err != nil {
		return nil, nil, err
	}
	return m.Bytes(), m.Unmap, nil
}

func (p xenbusPort) BindEvent(node string, kick func()) (eventPort, error) {
	ep, err := p.fe.BindEvent(node, func(_ *evtchn.Endpoint, ev evtchn.EndpointEvent) {
		if ev == evtchn.EndpointNotifiedEvent {
			kick()
		}
	})
	if err != nil {
		return nil, err
	}
	return ep, nil
}

func (p xenbusPort) Grants() GrantCopier { return p.fe.Host().Grants() }
