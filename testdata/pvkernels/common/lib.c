/*
 * lib.c - console output, the test-result protocol and the few libc
 * functions the kernels need.
 *
 * Output protocol (what internal/pvkernels.Check parses):
 *   ok N - description
 *   not ok N - description: details
 *   # diagnostic text
 *   Bail out! reason                  (setup failed; the run stops)
 *   xenvmm-test: PASS | xenvmm-test: FAIL   (last line)
 * then SCHEDOP_shutdown with SHUTDOWN_poweroff on PASS, SHUTDOWN_crash on FAIL.
 */
#include "pvk.h"

typedef __builtin_va_list va_list;
#define va_start(ap, last) __builtin_va_start(ap, last)
#define va_arg(ap, t)      __builtin_va_arg(ap, t)
#define va_end(ap)         __builtin_va_end(ap)

unsigned int test_count, test_failures;

/* ---- libc ------------------------------------------------------------- */
void *memset(void *s, int c, size_t n)
{
    unsigned char *p = s;
    while (n--)
        *p++ = (unsigned char)c;
    return s;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *dp = d;
    const unsigned char *sp = s;
    while (n--)
        *dp++ = *sp++;
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

size_t strnlen(const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (unsigned char)*a - (unsigned char)*b;
        if (!*a)
            return 0;
    }
    return 0;
}

const char *strstr(const char *h, const char *n)
{
    size_t ln = strlen(n);
    for (; *h; h++)
        if (!strncmp(h, n, ln))
            return h;
    return ln ? NULL : h;
}

/* ---- formatting ------------------------------------------------------- */
struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_num(struct out *o, unsigned long v, unsigned base, bool upper,
                    bool neg, int width, char pad, bool left)
{
    char tmp[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int len = n + (neg ? 1 : 0);
    if (!left && pad == ' ')
        for (; width > len; width--)
            put(o, ' ');
    if (neg)
        put(o, '-');
    if (!left && pad == '0')
        for (; width > len; width--)
            put(o, '0');
    while (n)
        put(o, tmp[--n]);
    if (left)
        for (; width > len; width--)
            put(o, ' ');
}

static int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int lng = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            long v = lng ? va_arg(ap, long) : va_arg(ap, int);
            put_num(&o, v < 0 ? -(unsigned long)v : (unsigned long)v, 10, false,
                    v < 0, width, pad, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
            put_num(&o, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width, pad, left);
            break;
        }
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_num(&o, (unsigned long)va_arg(ap, void *), 16, false, false, width, pad, left);
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int len = (int)strlen(s);
            if (!left)
                for (; width > len; width--)
                    put(&o, ' ');
            while (*s)
                put(&o, *s++);
            if (left)
                for (; width > len; width--)
                    put(&o, ' ');
            break;
        }
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

/* ---- console ---------------------------------------------------------- */
/*
 * Output goes through HYPERVISOR_console_io(CONSOLEIO_write) (xen.h). A
 * release build of Xen refuses that to ordinary domUs (xsm/dummy.h
 * xsm_console_io: allowed for the console domain or with
 * CONFIG_VERBOSE_DEBUG only), so when it fails we switch, for good, to the
 * PV console ring that start_info names (io/console.h), as XTF does.
 */
static bool use_ring;

struct xencons_interface *console_ring(void)
{
    if (!start_info->console.domU.mfn)
        return NULL;
    return mfn_to_virt(start_info->console.domU.mfn);
}

#define RING_YIELD_BUDGET 1000000

bool console_ring_write(const char *s, size_t n)
{
    struct xencons_interface *intf = console_ring();
    unsigned long budget = RING_YIELD_BUDGET;

    if (!intf)
        return false;
    while (n) {
        XENCONS_RING_IDX cons = *(volatile XENCONS_RING_IDX *)&intf->out_cons;
        XENCONS_RING_IDX prod = intf->out_prod;
        __sync_synchronize();           /* read out_cons before reusing space */
        if (prod - cons > sizeof(intf->out))
            return false;               /* the backend corrupted the indexes */
        size_t done = 0;
        while (done < n && prod - cons < sizeof(intf->out))
            intf->out[MASK_XENCONS_IDX(prod++, intf->out)] = s[done++];
        barrier();                      /* the bytes before the producer index */
        *(volatile XENCONS_RING_IDX *)&intf->out_prod = prod;
        evtchn_send(start_info->console.domU.evtchn);
        s += done;
        n -= done;
        if (n) {
            if (!budget--)
                return false;
            HYPERVISOR_sched_op(SCHEDOP_yield, NULL);
        }
    }
    /* Wait until the backend has consumed everything. */
    while (*(volatile XENCONS_RING_IDX *)&intf->out_cons !=
           *(volatile XENCONS_RING_IDX *)&intf->out_prod) {
        if (!budget--)
            return false;
        HYPERVISOR_sched_op(SCHEDOP_yield, NULL);
    }
    return true;
}

void console_write(const char *s, size_t n)
{
    if (!use_ring) {
        if (HYPERVISOR_console_io(CONSOLEIO_write, n, s) >= 0)
            return;
        use_ring = true;
    }
    console_ring_write(s, n);
}

static void vprint(const char *prefix, const char *fmt, va_list ap)
{
    char buf[512];
    size_t p = strlen(prefix);
    memcpy(buf, prefix, p);
    int n = vsnprintf(buf + p, sizeof(buf) - p, fmt, ap);
    size_t len = p + ((size_t)n < sizeof(buf) - p ? (size_t)n : sizeof(buf) - p - 1);
    console_write(buf, len);
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint("", fmt, ap);
    va_end(ap);
    return 0;
}

void diag(const char *fmt, ...)
{
    char line[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    printf("# %s\n", line);
}

/* ---- test protocol ---------------------------------------------------- */
bool check(bool ok, const char *desc, const char *fmt, ...)
{
    test_count++;
    if (ok) {
        printf("ok %u - %s\n", test_count, desc);
        return true;
    }
    test_failures++;
    char details[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof(details), fmt, ap);
    va_end(ap);
    printf("not ok %u - %s: %s\n", test_count, desc, details);
    return false;
}

static const char *errname(long rc)
{
    switch (rc) {
    case 0:            return "0";
    case -XEN_EPERM:   return "-EPERM";
    case -XEN_ENOENT:  return "-ENOENT";
    case -XEN_ESRCH:   return "-ESRCH";
    case -XEN_EFAULT:  return "-EFAULT";
    case -XEN_EBUSY:   return "-EBUSY";
    case -XEN_EEXIST:  return "-EEXIST";
    case -XEN_EINVAL:  return "-EINVAL";
    case -XEN_ENOSYS:  return "-ENOSYS";
    case -XEN_ETIME:   return "-ETIME";
    }
    return "?";
}

bool check_ret(const char *desc, long rc, long want)
{
    return check(rc == want, desc, "returned %ld (%s), want %ld (%s)",
                 rc, errname(rc), want, errname(want));
}

bool check_eq(const char *desc, long got, long want)
{
    return check(got == want, desc, "got %ld (0x%lx), want %ld (0x%lx)",
                 got, got, want, want);
}

void __noreturn shutdown(unsigned int reason)
{
    struct sched_shutdown sd = { .reason = reason };
    long rc = HYPERVISOR_sched_op(SCHEDOP_shutdown, &sd);
    diag("SCHEDOP_shutdown(%u) returned %ld", reason, rc);
    for (;;)
        HYPERVISOR_sched_op(SCHEDOP_yield, NULL);
}

void __noreturn pvk_finish(void)
{
    if (test_failures || !test_count) {
        diag("%u of %u checks failed", test_failures, test_count);
        printf("xenvmm-test: FAIL\n");
        shutdown(SHUTDOWN_crash);
    }
    printf("xenvmm-test: PASS\n");
    shutdown(SHUTDOWN_poweroff);
}

void __noreturn bail(const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    printf("Bail out! %s\n", line);
    printf("xenvmm-test: FAIL\n");
    shutdown(SHUTDOWN_crash);
}
