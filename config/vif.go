package config

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// Vif is one entry of the vif list: a NET_SPEC_STRING of
// docs/man/xl-network-configuration.5.pod.in, read as parse_nic_config in
// tools/xl/xl_parse.c does.
type Vif struct {
	Spec string `json:"spec"` // as written
	// MAC is the guest's MAC address, normalised to lower-case
	// "xx:xx:xx:xx:xx:xx"; "" means the toolstack picks one (00:16:3e:...).
	MAC        string `json:"mac,omitempty"`
	Bridge     string `json:"bridge,omitempty"` // "" means xl's default, xenbr0
	IP         string `json:"ip,omitempty"`
	Script     string `json:"script,omitempty"`
	VifName    string `json:"vifname,omitempty"`
	Model      string `json:"model,omitempty"`
	Type       string `json:"type,omitempty"` // vif or ioemu (HVM only)
	Backend    string `json:"backend,omitempty"`
	GatewayDev string `json:"gatewaydev,omitempty"` // also the deprecated netdev=
	VLAN       string `json:"vlan,omitempty"`
	// Rate is rate= as written ("10Mb/s@20ms"); RateBytesPerInterval and
	// RateIntervalUsecs are what xlu_vif_parse_rate makes of it.
	Rate                 string `json:"rate,omitempty"`
	RateBytesPerInterval uint64 `json:"rate_bytes_per_interval,omitempty"`
	RateIntervalUsecs    uint32 `json:"rate_interval_usecs,omitempty"`
	MTU                  int    `json:"mtu,omitempty"`   // 0: default
	DevID                *int   `json:"devid,omitempty"` // nil: the index in the list
	Trusted              *bool  `json:"trusted,omitempty"`
	// Other holds the keys xenvmm keeps but does not interpret (the COLO
	// keys, accel) and the ones xl does not know, in order.
	Other []Option `json:"other,omitempty"`
	Pos   Pos      `json:"pos"` // of the spec string
}

// Option is a key=value pair of a spec string that has no typed field.
type Option struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Known  bool   `json:"known"`  // xl knows it; false means xl would warn "unrecognized argument"
	Offset int    `json:"offset"` // in the spec string
}

// HardwareAddr returns the MAC address, or nil when none was given.
func (v *Vif) HardwareAddr() net.HardwareAddr {
	if v.MAC == "" {
		return nil
	}
	hw, err := net.ParseMAC(v.MAC)
	if err != nil {
		return nil
	}
	return hw
}

// vifStringKeys are the parse_nic_config keys that are plain strings with
// no field here (the COLO options, accel).
var vifStringKeys = map[string]bool{"forwarddev": true, "accel": true}

// ParseVif parses one NET_SPEC_STRING: comma-separated key=value pairs and
// the flags trusted and untrusted. Blanks around each pair are ignored
// (xl strips only leading spaces) and empty pairs are skipped, as strtok
// does. Keys xl does not know are kept in Other; the caller warns about
// them. Errors are *SpecError pointing into spec.
func ParseVif(spec string) (Vif, error) {
	v := Vif{Spec: spec}
	off := 0
	for _, item := range strings.Split(spec, ",") {
		start := off
		off += len(item) + 1
		lead := len(item) - len(strings.TrimLeft(item, " \t"))
		item = strings.TrimSpace(item)
		start += lead
		if item == "" {
			continue
		}
		eq := strings.IndexByte(item, '=')
		if eq < 0 {
			switch item {
			case "trusted", "untrusted":
				b := item == "trusted"
				v.Trusted = &b
			default:
				v.Other = append(v.Other, Option{Key: item, Offset: start})
			}
			continue
		}
		key, val, valOff := item[:eq], item[eq+1:], start+eq+1
		errorf := func(format string, args ...any) error {
			return &SpecError{Offset: valOff, Msg: fmt.Sprintf(format, args...)}
		}
		switch key {
		case "mac":
			mac, err := parseMAC(val)
			if err != nil {
				return Vif{}, errorf("bad mac %q: %v", val, err)
			}
			v.MAC = mac
		case "bridge":
			v.Bridge = val
		case "ip":
			v.IP = val
		case "script":
			v.Script = val
		case "vifname":
			v.VifName = val
		case "model":
			v.Model = val
		case "backend":
			v.Backend = val
		case "gatewaydev", "netdev":
			v.GatewayDev = val
		case "vlan":
			v.VLAN = val
		case "type":
			if val != "vif" && val != "ioemu" {
				return Vif{}, errorf("bad type %q: expected vif or ioemu", val)
			}
			v.Type = val
		case "rate":
			bpi, usecs, err := parseVifRate(val)
			if err != nil {
				return Vif{}, errorf("bad rate %q: %v", val, err)
			}
			v.Rate, v.RateBytesPerInterval, v.RateIntervalUsecs = val, bpi, usecs
		case "mtu", "devid":
			n, err := strconv.ParseUint(val, 10, 31)
			if err != nil {
				return Vif{}, errorf("bad %s %q: expected a decimal number", key, val)
			}
			if key == "mtu" {
				v.MTU = int(n)
			} else {
				d := int(n)
				v.DevID = &d
			}
		default:
			known := vifStringKeys[key] || strings.HasPrefix(key, "colo_")
			v.Other = append(v.Other, Option{Key: key, Value: val, Known: known, Offset: start})
		}
	}
	return v, nil
}

// parseMAC accepts six groups of one or two hex digits separated by ':'
// (or all by '-').
func parseMAC(s string) (string, error) {
	sep := ":"
	if !strings.Contains(s, ":") && strings.Contains(s, "-") {
		sep = "-"
	}
	parts := strings.Split(s, sep)
	if len(parts) != 6 {
		return "", fmt.Errorf("expected six hex octets like aa:00:00:50:02:f0")
	}
	out := make([]string, 6)
	for i, p := range parts {
		if len(p) < 1 || len(p) > 2 || hexVal(p[0]) < 0 || (len(p) == 2 && hexVal(p[1]) < 0) {
			return "", fmt.Errorf("octet %d (%q) is not one or two hex digits; expected six hex octets like aa:00:00:50:02:f0", i+1, p)
		}
		n, _ := strconv.ParseUint(p, 16, 8)
		out[i] = fmt.Sprintf("%02x", n)
	}
	return strings.Join(out, ":"), nil
}

var (
	vifRateRE     = regexp.MustCompile(`^[0-9]+[GMK]?[Bb]/s$`)
	vifIntervalRE = regexp.MustCompile(`^[0-9]+[mu]?s?$`)
)

// parseVifRate is xlu_vif_parse_rate (tools/libs/util/libxlu_vif.c):
// "RATE[@INTERVAL]" with RATE like 10Mb/s or 250KB/s and INTERVAL like
// 20ms (default 50ms). It returns the credit per interval in bytes and the
// interval in microseconds.
func parseVifRate(s string) (uint64, uint32, error) {
	rate, interval, hasInterval := strings.Cut(s, "@")
	if rate == "" {
		return 0, 0, fmt.Errorf("no rate specified")
	}
	if !vifRateRE.MatchString(rate) {
		return 0, 0, fmt.Errorf("invalid rate: expected a number, an optional G, M or K, then B/s (bytes) or b/s (bits)")
	}
	digits := strings.TrimRight(rate, "GMKBb/s")
	bps, err := strconv.ParseUint(digits, 10, 64)
	if err == nil && bps == 0 {
		return 0, 0, fmt.Errorf("rate must be greater than zero")
	}
	if err != nil || bps > math.MaxUint32 {
		return 0, 0, fmt.Errorf("rate overflow")
	}
	unit := rate[len(digits):]
	switch unit[0] {
	case 'G':
		bps *= 1000 * 1000 * 1000
	case 'M':
		bps *= 1000 * 1000
	case 'K':
		bps *= 1000
	}
	if strings.Contains(unit, "b") {
		bps /= 8
	}
	usecs := uint64(50000)
	if hasInterval {
		if !vifIntervalRE.MatchString(interval) {
			return 0, 0, fmt.Errorf("invalid replenishment interval: expected a number and optionally ms, us or s")
		}
		d := strings.TrimRight(interval, "mus")
		n, err := strconv.ParseUint(d, 10, 64)
		if err == nil && n == 0 {
			return 0, 0, fmt.Errorf("replenishment interval must be greater than zero")
		}
		if err != nil || n > math.MaxUint32 {
			return 0, 0, fmt.Errorf("replenishment interval overflow")
		}
		switch interval[len(d):] {
		case "s", "":
			n *= 1000 * 1000
		case "ms", "m":
			n *= 1000
		}
		if n > math.MaxUint32 {
			return 0, 0, fmt.Errorf("replenishment interval overflow")
		}
		usecs = n
	}
	if usecs != 0 && bps > math.MaxUint64/usecs {
		return 0, 0, fmt.Errorf("rate overflow")
	}
	return bps * usecs / 1000000, uint32(usecs), nil
}
