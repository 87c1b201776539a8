package hole

// The return chain: how the VMM resumes a vCPU in guest mode. The vCPU is
// halted in a ring-0 stub when Go handles an exit; to resume it, Go writes
// a chain on the vCPU's ring-0 stack — a sequence of stub addresses, each
// followed by its operands — ending with an iretq frame, and restarts the
// vCPU at a `ret` with RSP at the chain. Each stub does one privileged
// thing (load CR3, invlpg, swapgs, wrmsr, ...) without an exit, keeps the
// guest's registers intact, and returns into the next; iretq drops to
// CPL3 with CS/SS loaded from the GDT. This avoids KVM_SET_SREGS (and
// KVM's MMU reload on a CR3 change from userspace) on every return to the
// guest: only the general registers are set.

// chainOff is where the chain stubs sit in the stub page.
const chainOff = 0xc00

// chainCode is the stubs, assembled with GNU as:
//
//	ret:    c3                      ret
//	cr3:    48 87 04 24             xchg %rax,(%rsp)
//	        0f 22 d8                mov %rax,%cr3
//	        58 c3                   pop %rax; ret
//	invlpg: 48 87 04 24             xchg %rax,(%rsp)
//	        0f 01 38                invlpg (%rax)
//	        58 c3                   pop %rax; ret
//	swapgs: 0f 01 f8 c3             swapgs; ret
//	wrmsr:  51 52 50                push %rcx; push %rdx; push %rax
//	        8b 4c 24 18             mov 0x18(%rsp),%ecx      (operand 1: MSR)
//	        48 8b 44 24 20          mov 0x20(%rsp),%rax      (operand 2: value)
//	        48 89 c2                mov %rax,%rdx
//	        48 c1 ea 20             shr $0x20,%rdx
//	        0f 30                   wrmsr
//	        58 5a 59                pop %rax; pop %rdx; pop %rcx
//	        48 83 c4 10 c3          add $0x10,%rsp; ret
//	xsetbv: (as wrmsr with 0f 01 d1 xsetbv)
//	cr0:    48 87 04 24 0f 22 c0 58 c3   xchg; mov %rax,%cr0; pop; ret
//	lldt:   48 87 04 24 0f 00 d0 58 c3   xchg; lldt %ax; pop; ret
//	gssel:  48 87 04 24 0f 01 f8 8e e8 0f 01 f8 58 c3
//	                                xchg; swapgs; mov %eax,%gs; swapgs; pop; ret
//	iret:   48 cf                   iretq
var chainCode = []byte{
	0xc3,
	0x48, 0x87, 0x04, 0x24, 0x0f, 0x22, 0xd8, 0x58, 0xc3,
	0x48, 0x87, 0x04, 0x24, 0x0f, 0x01, 0x38, 0x58, 0xc3,
	0x0f, 0x01, 0xf8, 0xc3,
	0x51, 0x52, 0x50, 0x8b, 0x4c, 0x24, 0x18, 0x48, 0x8b, 0x44, 0x24, 0x20, 0x48, 0x89, 0xc2, 0x48, 0xc1, 0xea, 0x20, 0x0f, 0x30, 0x58, 0x5a, 0x59, 0x48, 0x83, 0xc4, 0x10, 0xc3,
	0x51, 0x52, 0x50, 0x8b, 0x4c, 0x24, 0x18, 0x48, 0x8b, 0x44, 0x24, 0x20, 0x48, 0x89, 0xc2, 0x48, 0xc1, 0xea, 0x20, 0x0f, 0x01, 0xd1, 0x58, 0x5a, 0x59, 0x48, 0x83, 0xc4, 0x10, 0xc3,
	0x48, 0x87, 0x04, 0x24, 0x0f, 0x22, 0xc0, 0x58, 0xc3,
	0x48, 0x87, 0x04, 0x24, 0x0f, 0x00, 0xd0, 0x58, 0xc3,
	0x48, 0x87, 0x04, 0x24, 0x0f, 0x01, 0xf8, 0x8e, 0xe8, 0x0f, 0x01, 0xf8, 0x58, 0xc3,
	0x48, 0xcf,
}

// Addresses of the chain stubs.
const (
	StubRet    = stubVA + chainOff + 0x00
	StubCR3    = stubVA + chainOff + 0x01
	StubInvlpg = stubVA + chainOff + 0x0a
	StubSwapgs = stubVA + chainOff + 0x13
	StubWRMSR  = stubVA + chainOff + 0x17
	StubXSETBV = stubVA + chainOff + 0x34
	StubCR0    = stubVA + chainOff + 0x52
	StubLLDT   = stubVA + chainOff + 0x5b
	StubGSSel  = stubVA + chainOff + 0x64
	StubIret   = stubVA + chainOff + 0x72
)

// InStubs reports whether rip lies in the stub page (the vCPU is in ring
// 0, in a vector stub or part-way through a return chain).
func InStubs(rip uint64) bool { return rip >= stubVA && rip < stubVA+0x1000 }

// Chain accumulates a return chain. The zero value is empty.
type Chain struct {
	words []uint64
}

// Reset empties the chain, keeping its storage.
func (c *Chain) Reset() { c.words = c.words[:0] }

// Len is the number of operations queued (excluding the final iret).
func (c *Chain) Len() int { return len(c.words) }

// LoadCR3 queues a CR3 load (which also flushes the TLB).
func (c *Chain) LoadCR3(cr3 uint64) { c.words = append(c.words, StubCR3, cr3) }

// Invlpg queues an invlpg of va.
func (c *Chain) Invlpg(va uint64) { c.words = append(c.words, StubInvlpg, va) }

// Swapgs queues a swapgs.
func (c *Chain) Swapgs() { c.words = append(c.words, StubSwapgs) }

// WRMSR queues an MSR write.
func (c *Chain) WRMSR(msr uint32, v uint64) { c.words = append(c.words, StubWRMSR, uint64(msr), v) }

// XSETBV queues an extended control register write.
func (c *Chain) XSETBV(xcr uint32, v uint64) { c.words = append(c.words, StubXSETBV, uint64(xcr), v) }

// LoadCR0 queues a CR0 load.
func (c *Chain) LoadCR0(v uint64) { c.words = append(c.words, StubCR0, v) }

// LLDT queues an LDT selector load.
func (c *Chain) LLDT(sel uint16) { c.words = append(c.words, StubLLDT, uint64(sel)) }

// LoadUserGS queues a load of the inactive (user) GS selector.
func (c *Chain) LoadUserGS(sel uint16) { c.words = append(c.words, StubGSSel, uint64(sel)) }

// Frame is what iretq pops.
type Frame struct {
	RIP, CS, RFLAGS, RSP, SS uint64
}

// Place writes the chain and the final iretq frame so that it ends at
// stackTop, into stack (the bytes of the ring-0 stack page, whose end is
// stackTop), and returns the RSP to start at with RIP = StubRet. It fails
// if the chain does not fit in the page.
func (c *Chain) Place(stack []byte, stackTop uint64, f Frame) (uint64, bool) {
	n := len(c.words) + 1 + 5 // ops, iret stub, frame
	if n*8 > len(stack) {
		return 0, false
	}
	off := len(stack) - n*8
	put := func(v uint64) {
		for i := 0; i < 8; i++ {
			stack[off+i] = byte(v >> (8 * i))
		}
		off += 8
	}
	for _, w := range c.words {
		put(w)
	}
	put(StubIret)
	put(f.RIP)
	put(f.CS)
	put(f.RFLAGS)
	put(f.RSP)
	put(f.SS)
	return stackTop - uint64(n*8), true
}
