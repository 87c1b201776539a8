/*
 * console - the PV console ring (io/console.h) that start_info names:
 * write more than the ring holds, notify the console event channel with
 * EVTCHNOP_send, and wait with SCHEDOP_yield until the backend has
 * consumed everything (out_cons == out_prod).
 * Hypercalls by `syscall` from kernel mode.
 *
 * The ring receives exactly the lines internal/pvkernels.ConsoleRingLines
 * returns; the test-protocol lines go through console_io as usual, with
 * "# console ring begins" before and "# console ring ends" after.
 */
#include "pvk.h"

PVK_KERNEL("console", "", PVK_VIA_SYSCALL);

#define RING_LINES 40
static const char pattern[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
static char text[RING_LINES * 128];

void test_main(void)
{
    struct xencons_interface *intf = console_ring();
    evtchn_port_t port = start_info->console.domU.evtchn;
    diag("console mfn %lx at %p, event channel %u", start_info->console.domU.mfn,
         (void *)intf, port);
    if (!check(intf != NULL && port != 0,
               "start_info.console.domU: a page of the initial mapping and an event channel",
               "ring %p, evtchn %u", (void *)intf, port))
        return;

    XENCONS_RING_IDX cons0 = intf->out_cons, prod0 = intf->out_prod;
    check(prod0 - cons0 <= sizeof(intf->out), "the out ring indexes are consistent",
          "out_cons %u, out_prod %u", cons0, prod0);

    check_ret("EVTCHNOP_send on the console event channel returns 0", evtchn_send(port), 0);

    size_t n = 0;
    for (int i = 1; i <= RING_LINES; i++)
        n += snprintf(text + n, sizeof(text) - n, "xenvmm console ring line %02d of %d: %s\n", i,
                      RING_LINES, pattern);
    diag("console ring begins");
    prod0 = intf->out_prod;     /* after the marker, should it have gone to the ring too */
    bool ok = console_ring_write(text, n);
    XENCONS_RING_IDX cons1 = intf->out_cons, prod1 = intf->out_prod;
    diag("console ring ends");
    check(ok && n > sizeof(intf->out),
          "more than the 2048-byte out ring holds was written, notified and consumed",
          "wrote %lu bytes, ok %d", n, ok);
    check(cons1 == prod1 && prod1 - prod0 == n,
          "out_prod advanced by exactly the bytes written and out_cons caught up with it",
          "out_cons %u, out_prod %u -> %u, %lu bytes", cons1, prod0, prod1, n);
}
