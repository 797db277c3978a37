/* Guest wall clock: set from core.clock.sync when it is off by more than
 * CLOCK_SYNC_TOLERANCE_NS, so that small jitter never steps the clock. */
#include "agent.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define CLOCK_SYNC_TOLERANCE_NS 100000000ll

void clock_handle_sync(const struct msg *m)
{
	uint64_t host_ns = m->u.clock_sync.unix_time_nanos;
	struct timespec now, set;
	long long guest_ns, diff;

	clock_gettime(CLOCK_REALTIME, &now);
	guest_ns = (long long)now.tv_sec * 1000000000ll + now.tv_nsec;
	if (host_ns > (uint64_t)INT64_MAX)
		return;
	diff = (long long)host_ns - guest_ns;
	if (diff <= CLOCK_SYNC_TOLERANCE_NS && diff >= -CLOCK_SYNC_TOLERANCE_NS)
		return;

	set.tv_sec = (time_t)(host_ns / 1000000000ull);
	set.tv_nsec = (long)(host_ns % 1000000000ull);
	if (clock_settime(CLOCK_REALTIME, &set) < 0)
		agent_error("set the clock (off by %lld ms): %s", diff / 1000000, strerror(errno));
	else
		agent_info("clock stepped by %lld ms", diff / 1000000);
}
