/* When to send core.clock.sync. A suspended host (a closed laptop lid, a
 * paused VM) freezes the guest's clock, which then breaks TLS validity
 * checks in the guest; so the runtime sends the host's wall clock:
 *   - once as soon as the relay runs,
 *   - when CLOCK_SYNC_INTERVAL_MS passed since the last sync,
 *   - when the wall clock moved CLOCK_SYNC_JUMP_MS or more further than the
 *     monotonic clock since the previous check (the host slept, or its
 *     clock was set).
 * The runtime checks every CLOCK_SYNC_POLL_MS. The decision is a pure
 * function of the times passed in, so tests can feed any clock. */
#ifndef MSB_RUNTIME_CLOCK_SYNC_H
#define MSB_RUNTIME_CLOCK_SYNC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define CLOCK_SYNC_POLL_MS 2000
#define CLOCK_SYNC_INTERVAL_MS 60000
#define CLOCK_SYNC_JUMP_MS 6000

struct clock_sync {
	bool started;
	uint64_t last_sync_mono_ns;
	struct timespec prev_check_real;
	uint64_t prev_check_mono_ns;
};

enum clock_sync_verdict {
	CLOCK_SYNC_NONE,
	CLOCK_SYNC_SEND,
	/* The wall clock cannot be sent: before the epoch, or beyond what u64
	 * nanoseconds hold. The caller logs it. */
	CLOCK_SYNC_INVALID,
};

/* One check at wall time real and monotonic time mono_ns. On
 * CLOCK_SYNC_SEND, *unix_nanos is the value to send. */
enum clock_sync_verdict clock_sync_check(struct clock_sync *cs, struct timespec real, uint64_t mono_ns,
					 uint64_t *unix_nanos);

#endif
