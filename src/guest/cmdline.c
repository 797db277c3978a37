/* The guest kernel command line. */
#include "cmdline.h"

#include <errno.h>
#include <stdio.h>

/* Kernel parameters for every guest. A quiet console still keeps errors
 * and panics in kernel.log. Measured under TCG with Debian's 6.1 kernel on
 * a 2-core x86_64 host (single runs, so orders of magnitude):
 *   cryptomgr.notests        skips the crypto self-tests, about 0.4 s;
 *   init_on_alloc=0,
 *   page_alloc.shuffle=0     stop zeroing and shuffling pages at
 *                            allocation, about 0.25 s. Both harden the
 *                            guest against leaks between its own
 *                            processes; the isolation boundary of a
 *                            sandbox is the VM, not the guest kernel.
 * The others skip probing hardware a microvm does not have. */
#define KERNEL_PARAMS                                                                                      \
	"console=ttyS0 panic=-1 cryptomgr.notests init_on_alloc=0 page_alloc.shuffle=0 random.trust_cpu=on " \
	"no_timer_check i8042.noaux i8042.nopnp audit=0 apparmor=0 ima_appraise=off 8250.nr_uarts=1"
/* The root the agent mounts: the image on the first disk, read-only, with
 * a writable upper in memory or on the second disk. */
#define ROOT_SPEC_MEMORY_UPPER "kind=disk-image,device=/dev/vda,fstype=erofs"
#define ROOT_SPEC_DISK_UPPER "kind=oci-erofs,lower=/dev/vda,upper=/dev/vdb,upper_fstype=ext4"

int cmdline_build(char *out, size_t len, const struct cmdline_params *p)
{
	int n = snprintf(out, len, "%s%s", KERNEL_PARAMS, p->verbose ? "" : " quiet");

	/* Under TCG the guest TSC is the host's; naming its frequency spares
	 * a calibration against the emulated PIT that sometimes fails and
	 * hangs the boot. */
	if (p->tcg && p->tsc_khz && n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " tsc_early_khz=%u tsc=reliable", p->tsc_khz);
	if (p->probe && n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " MSB_PROBE=1");
	if (n >= 0 && (size_t)n < len)
		n += snprintf(out + n, len - (size_t)n, " MSB_BLOCK_ROOT=%s MSB_HOSTNAME=%s",
			      p->persistent_upper ? ROOT_SPEC_DISK_UPPER : ROOT_SPEC_MEMORY_UPPER,
			      p->hostname ? p->hostname : "msb");
	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}
