/* Choosing the accelerator: KVM only where a probe shows that KVM boots a
 * Linux guest on this host, TCG software emulation otherwise.
 *
 * /dev/kvm can exist and still be unable to run a guest (nested
 * virtualisation that fails on real kernels), and such a failure can take
 * many seconds to show; so the verdict of a probe boot is kept in
 * $MSB_HOME/cache/accel for as long as the host stays up (keyed by the
 * kernel's boot_id). MSB_ACCEL=kvm|tcg overrides it.
 */
#ifndef MSB_RUNTIME_ACCEL_H
#define MSB_RUNTIME_ACCEL_H

#include <stdbool.h>

#include "../engine/engine.h"
#include "../guest/assets.h"

/* A probe boot that has not reached init by then counts as a failure. A
 * working KVM host reaches it in well under a second. */
#define ACCEL_PROBE_TIMEOUT_MS 10000

struct accel_verdict {
	enum engine_accel accel;
	char reason[256];
	bool cached;       /* from an earlier probe during this host boot */
	unsigned tsc_khz;  /* host TSC frequency; 0 when unknown */
};

/* Decides, probing if needed; never fails: any doubt means TCG. */
void accel_choose(const struct guest_assets *assets, struct accel_verdict *v);

#endif
