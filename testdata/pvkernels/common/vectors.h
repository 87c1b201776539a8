/* vectors.h - the pseudo vectors the callback entry stubs (head.S) store
 * in struct cpu_regs.vector; shared by C and assembly. */
#ifndef PVK_VECTORS_H
#define PVK_VECTORS_H
#define PVK_VEC_SYSCALL 0x100   /* CALLBACKTYPE_syscall */
#define PVK_VEC_EVENT   0x200   /* CALLBACKTYPE_event */
#endif
