/* VM engines behind one table of operations. QEMU is the engine today; an
 * in-process KVM engine can take its place behind the same table. */
#ifndef MSB_ENGINE_ENGINE_H
#define MSB_ENGINE_ENGINE_H

#include <stdbool.h>
#include <sys/types.h>

#include "msb/msb.h"

enum engine_accel {
	ENGINE_ACCEL_TCG,
	ENGINE_ACCEL_KVM,
};

struct engine_config {
	const char *name;
	const char *kernel;
	const char *initramfs;
	const char *cmdline;
	const char *root_image;  /* read-only; NULL: no disk (accelerator probe) */
	const char *upper_image; /* writable; NULL: none */
	unsigned cpus;
	unsigned memory_mib;
	enum engine_accel accel;
	/* One end of a stream socket that becomes the guest's console port
	 * "agent"; the caller keeps the other end. */
	int agent_fd;
	/* File that receives the guest's serial console. */
	const char *console_log;
	/* vhost-user socket of a virtiofsd serving tag fs_tag; NULL: none.
	 * virtio-fs needs guest memory that the daemon can map, so the VM
	 * then gets shared memory. */
	const char *fs_socket;
	const char *fs_tag;
};

struct engine_vm {
	pid_t pid;
	/* The engine's own diagnostics (stderr), readable by the caller. */
	int diag_fd;
};

struct engine_ops {
	const char *name;
	/* Starts the VM. The engine process dies with the calling process
	 * (PR_SET_PDEATHSIG), so no VM outlives its sandbox process. */
	int (*start)(const struct engine_config *config, struct engine_vm *vm, msb_error *err);
	/* Stops the VM at once, without asking the guest. */
	void (*kill)(struct engine_vm *vm);
	/* Describes the engine binary for diagnostics ("QEMU 7.2.22 at ..."). */
	int (*describe)(char *out, size_t out_len, msb_error *err);
};

extern const struct engine_ops engine_qemu;

const char *engine_accel_name(enum engine_accel accel);

#endif
