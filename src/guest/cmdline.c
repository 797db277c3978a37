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

/* Guest paths travel percent-encoded: the kernel splits its command line
 * at spaces, and the mount lists use ':' and ';' as separators. */
static int put_encoded(char *out, size_t len, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			     *p == '/' || *p == '.' || *p == '_' || *p == '-';

		if (n + 4 > len)
			return -1;
		if (plain) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	out[n] = 0;
	return (int)n;
}

/* MSB_SHARES=INDEX:PATH[:ro][:file];...  MSB_TMPFS=PATH:size=MIB;... */
static int put_mounts(char *out, size_t len, const struct cmdline_params *p)
{
	char path[CMDLINE_MAX_BYTES];
	unsigned share = 0;
	size_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		bool first = true;

		for (size_t i = 0; i < p->n_mounts; i++) {
			const struct mount_spec *m = &p->mounts[i];
			int w;

			if ((pass == 0) != (m->kind != MOUNT_TMPFS))
				continue;
			if (put_encoded(path, sizeof(path), m->guest) < 0)
				return -1;
			if (pass == 0)
				w = snprintf(out + n, len - n, "%s%u:%s%s%s", first ? " MSB_SHARES=" : ";", share++, path,
					     m->read_only ? ":ro" : "", m->kind == MOUNT_FILE ? ":file" : "");
			else
				w = snprintf(out + n, len - n, "%s%s:size=%u", first ? " MSB_TMPFS=" : ";", path,
					     m->size_mib);
			if (w < 0 || (size_t)w >= len - n)
				return -1;
			n += (size_t)w;
			first = false;
		}
	}
	return (int)n;
}

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
	if (n >= 0 && (size_t)n < len) {
		int m = put_mounts(out + n, len - (size_t)n, p);

		n = m < 0 ? -1 : n + m;
	}
	return n >= 0 && (size_t)n < len && (size_t)n < CMDLINE_MAX_BYTES ? 0 : -ENAMETOOLONG;
}
