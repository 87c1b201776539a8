package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
	"github.com/xenvmm/xenvmm/vmm"
)

// shutdownCommand is `xenvmm shutdown NAME [-R|-H]`: like `xl shutdown`,
// it asks the guest to shut itself down by writing control/shutdown in
// the domain's xenstore, through the socket the running xenvmm serves.
func (a *app) shutdownCommand() *cli.Command {
	return &cli.Command{
		Name:      "shutdown",
		Usage:     "ask a running domain to shut down cleanly (through control/shutdown, as xl shutdown does)",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "reboot", Aliases: []string{"R"}, Usage: "reboot instead of powering off"},
			&cli.BoolFlag{Name: "halt", Aliases: []string{"H"}, Usage: "halt instead of powering off"},
			&cli.StringFlag{Name: "socket", Usage: "the domain's xenstore socket (default: where xenvmm run puts it for NAME)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return cli.Exit("shutdown: want exactly one domain NAME", 2)
			}
			name := cmd.Args().First()
			reason := "poweroff"
			switch {
			case cmd.Bool("reboot") && cmd.Bool("halt"):
				return cli.Exit("shutdown: -R and -H exclude each other", 2)
			case cmd.Bool("reboot"):
				reason = "reboot"
			case cmd.Bool("halt"):
				reason = "halt"
			}
			sock := cmd.String("socket")
			if sock == "" {
				sock = vmm.XenstoreSocketPath(name)
			}
			if err := requestShutdown(sock, reason); err != nil {
				return cli.Exit(fmt.Sprintf("shutdown %s: %v", name, err), 1)
			}
			fmt.Fprintf(a.stdout, "asked %s to %s\n", name, reason)
			return nil
		},
	}
}

// listCommand is `xenvmm list`: the domains running on this host (those
// whose xenstore socket answers).
func (a *app) listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the running domains",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			dir := filepath.Dir(filepath.Dir(vmm.XenstoreSocketPath("x")))
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				sock := filepath.Join(dir, e.Name(), "xenstored.sock")
				c, err := net.DialTimeout("unix", sock, time.Second)
				if err != nil {
					continue
				}
				c.Close()
				fmt.Fprintln(a.stdout, e.Name())
			}
			return nil
		},
	}
}

// The xenstore wire protocol (xen/include/public/io/xs_wire.h), just what
// `xenvmm shutdown` needs.
const (
	xsDirectory = 1
	xsRead      = 2
	xsWrite     = 11
	xsError     = 16
)

type xsConn struct {
	c  net.Conn
	id uint32
}

func (x *xsConn) call(typ uint32, payload []byte) ([]byte, error) {
	x.id++
	hdr := make([]byte, 16)
	binary.LittleEndian.PutUint32(hdr[0:], typ)
	binary.LittleEndian.PutUint32(hdr[4:], x.id)
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(payload)))
	if _, err := x.c.Write(append(hdr, payload...)); err != nil {
		return nil, err
	}
	for {
		if _, err := io.ReadFull(x.c, hdr); err != nil {
			return nil, err
		}
		n := binary.LittleEndian.Uint32(hdr[12:])
		if n > 4096 {
			return nil, errors.New("xenstore reply too large")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(x.c, body); err != nil {
			return nil, err
		}
		if binary.LittleEndian.Uint32(hdr[4:]) != x.id {
			continue // a watch event or a stale reply
		}
		if binary.LittleEndian.Uint32(hdr[0:]) == xsError {
			return nil, fmt.Errorf("xenstore: %s", strings.TrimRight(string(body), "\x00"))
		}
		return body, nil
	}
}

func requestShutdown(sock, reason string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("no running domain answers on %s: %w", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	x := &xsConn{c: c}
	dir, err := x.call(xsDirectory, []byte("/local/domain\x00"))
	if err != nil {
		return err
	}
	for _, d := range strings.Split(strings.TrimRight(string(dir), "\x00"), "\x00") {
		if d == "" || d == "0" {
			continue
		}
		_, err := x.call(xsWrite, []byte("/local/domain/"+d+"/control/shutdown\x00"+reason))
		return err
	}
	return errors.New("the domain has no guest in its xenstore")
}
