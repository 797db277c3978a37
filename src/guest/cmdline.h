/* The guest kernel command line: kernel parameters plus the MSB_* boot
 * configuration that the kernel hands to the agent as environment. */
#ifndef MSB_GUEST_CMDLINE_H
#define MSB_GUEST_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/mounts.h"

struct cmdline_params {
	const char *hostname;
	/* Host TSC frequency for TCG guests (0: let the guest calibrate). */
	unsigned tsc_khz;
	bool tcg;
	/* Boot to init and power off at once (accelerator probe, boot
	 * benchmark baseline). */
	bool probe;
	/* Every kernel message in the serial log, not only errors. */
	bool verbose;
	/* The second disk is an ext4 upper that keeps writes across boots;
	 * without it the upper lives in memory. */
	bool persistent_upper;
	/* Mounts for the agent: shares (in order, numbered from 0 within the
	 * virtio-fs tag) and tmpfs. */
	const struct mount_spec *mounts;
	size_t n_mounts;
};

/* Writes the command line; returns 0 or -ENAMETOOLONG (the kernel takes
 * at most CMDLINE_MAX_BYTES, which bounds the number of mounts). */
#define CMDLINE_MAX_BYTES 2048
int cmdline_build(char *out, size_t len, const struct cmdline_params *p);

#endif
