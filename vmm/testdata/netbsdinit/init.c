/*
 * /sbin/init for xenvmm's NetBSD disk test: a static NetBSD/amd64
 * program with no libc. NetBSD's kernel mounts the root file system
 * (FFS on xbd0, made by the test with makefs) read-only and runs this as
 * pid 1. It
 *   - opens /dev/console and says it started,
 *   - reads /xenvmm/token (written by the host into the image) and
 *     prints it,
 *   - remounts / read-write and writes /xenvmm/written: WRITTEN_BLOCKS
 *     blocks of 512 bytes, block i filled with the line pattern of
 *     pattern_block(i) (the host checks every byte), fsyncs it,
 *   - syncs and halts with powerdown (NetBSD then shuts the Xen domain
 *     down with SCHEDOP_shutdown/poweroff).
 * Each step is reported as an "XENVMM-NETBSD:" line on the console.
 *
 * Build: gcc -static -nostdlib -ffreestanding -fno-pie -no-pie (see
 * vmm/netbsd_kvm_test.go). The ".note.netbsd.ident" note makes NetBSD's
 * exec accept the ELF as a native binary (sys/kern/exec_elf.c,
 * netbsd_elf_signature).
 *
 * System calls (NetBSD sys/kern/syscalls.master, amd64 ABI: number in
 * %rax, arguments in %rdi %rsi %rdx %r10 %r8 %r9, carry set on error
 * with the errno in %rax).
 */

#define SYS_exit 1
#define SYS_read 3
#define SYS_write 4
#define SYS_open 5
#define SYS_close 6
#define SYS_getpid 20
#define SYS_sync 36
#define SYS_fsync 95
#define SYS_reboot 208
#define SYS___mount50 410

#define O_RDONLY 0x0
#define O_WRONLY 0x1
#define O_RDWR 0x2
#define O_CREAT 0x200
#define O_TRUNC 0x400

#define MNT_UPDATE 0x00010000
#define RB_HALT 0x08
#define RB_POWERDOWN (RB_HALT | 0x800)

#define WRITTEN_BLOCKS 256 /* 128 KiB */

__asm__(
	".section .note.netbsd.ident, \"a\", @note\n"
	".p2align 2\n"
	".long 7\n"          /* namesz: "NetBSD\0" */
	".long 4\n"          /* descsz */
	".long 1\n"          /* ELF_NOTE_TYPE_NETBSD_TAG */
	".asciz \"NetBSD\"\n"
	".p2align 2\n"
	".long 501000000\n"  /* __NetBSD_Version__ of 5.1 */
	".text\n"
	".globl _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call start_c\n"
	"	hlt\n");

static long sys(long n, long a, long b, long c, long d, long e)
{
	long ret;
	unsigned char cf;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	__asm__ volatile("syscall; setc %1"
			 : "=a"(ret), "=r"(cf), "+r"(r10), "+r"(r8)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "r9", "memory", "cc");
	return cf ? -ret : ret;
}

static int console = -1;

static char *utoa(char *p, unsigned long v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* say prints "XENVMM-NETBSD: " msg [number] "\n"; num < 0 prints none. */
static void say2(const char *msg, const char *str, long num)
{
	char buf[256], *p = buf;
	const char *pre = "XENVMM-NETBSD: ";
	while (*pre)
		*p++ = *pre++;
	while (*msg && p < buf + 160)
		*p++ = *msg++;
	if (str)
		while (*str && p < buf + 230)
			*p++ = *str++;
	if (num < 0 && num != -1) {
		*p++ = '-';
		num = -num;
	}
	if (num != -1)
		p = utoa(p, (unsigned long)num);
	*p++ = '\n';
	if (console >= 0)
		sys(SYS_write, console, (long)buf, p - buf, 0, 0);
}

static void say(const char *msg, long num) { say2(msg, 0, num); }

static void halt(void)
{
	sys(SYS_sync, 0, 0, 0, 0, 0);
	say("halting", -1);
	sys(SYS_reboot, RB_POWERDOWN, 0, 0, 0, 0);
	for (;;)
		;
}

static void fail(const char *what, long err)
{
	say2("FAIL ", what, err);
	halt();
}

/* pattern_block fills a 512-byte block with copies of
 * "xenvmm netbsd block NNNNNNNN\n" (29 bytes), cut at 512. */
static void pattern_block(char *b, unsigned long i)
{
	char line[32], *p = line;
	const char *pre = "xenvmm netbsd block ";
	unsigned long k;
	while (*pre)
		*p++ = *pre++;
	/* eight decimal digits, zero-padded */
	{
		unsigned long v = i;
		for (k = 0; k < 8; k++) {
			p[7 - k] = '0' + v % 10;
			v /= 10;
		}
	}
	p += 8;
	*p++ = '\n';
	for (k = 0; k < 512; k++)
		b[k] = line[k % (unsigned long)(p - line)];
}

void start_c(long *sp)
{
	char buf[512];
	long fd, n, i, struct_fspec[1];
	(void)sp;

	console = sys(SYS_open, (long)"/dev/console", O_RDWR, 0, 0, 0);
	if (console < 0)
		halt(); /* nowhere to say it */
	say("init started pid=", sys(SYS_getpid, 0, 0, 0, 0, 0));

	fd = sys(SYS_open, (long)"/xenvmm/token", O_RDONLY, 0, 0, 0);
	if (fd < 0)
		fail("open /xenvmm/token errno=", -fd);
	n = sys(SYS_read, fd, (long)buf, sizeof(buf) - 1, 0, 0);
	if (n < 0)
		fail("read /xenvmm/token errno=", -n);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = 0;
	sys(SYS_close, fd, 0, 0, 0, 0);
	say2("token ", buf, -1);

	/* mount -u -w /: struct ufs_args { char *fspec; } with no fspec
	 * updates the existing mount's flags (sys/ufs/ffs/ffs_vfsops.c). */
	struct_fspec[0] = 0;
	n = sys(SYS___mount50, (long)"ffs", (long)"/", MNT_UPDATE, (long)struct_fspec, sizeof(struct_fspec));
	if (n < 0)
		fail("remount / read-write errno=", -n);
	say("root read-write", -1);

	fd = sys(SYS_open, (long)"/xenvmm/written", O_WRONLY | O_CREAT | O_TRUNC, 0644, 0, 0);
	if (fd < 0)
		fail("create /xenvmm/written errno=", -fd);
	for (i = 0; i < WRITTEN_BLOCKS; i++) {
		pattern_block(buf, i);
		n = sys(SYS_write, fd, (long)buf, 512, 0, 0);
		if (n != 512)
			fail("write errno=", n < 0 ? -n : 0);
	}
	n = sys(SYS_fsync, fd, 0, 0, 0, 0);
	if (n < 0)
		fail("fsync errno=", -n);
	sys(SYS_close, fd, 0, 0, 0, 0);
	say("wrote bytes=", WRITTEN_BLOCKS * 512);
	halt();
}
