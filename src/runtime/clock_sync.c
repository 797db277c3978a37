/* The clock sync decision. */
#include "clock_sync.h"

#define NS_PER_MS 1000000ll
#define NS_PER_S 1000000000ll

static bool to_unix_nanos(struct timespec t, uint64_t *out)
{
	if (t.tv_sec < 0 || t.tv_nsec < 0 || t.tv_nsec >= NS_PER_S)
		return false;
	if ((uint64_t)t.tv_sec > (UINT64_MAX - (uint64_t)t.tv_nsec) / (uint64_t)NS_PER_S)
		return false;
	*out = (uint64_t)t.tv_sec * (uint64_t)NS_PER_S + (uint64_t)t.tv_nsec;
	return true;
}

/* How far the wall clock moved beyond the monotonic clock since the
 * previous check, in absolute nanoseconds. */
static long double clock_drift_ns(const struct clock_sync *cs, struct timespec real, uint64_t mono_ns)
{
	/* In long double from the start: an invalid earlier time may be
	 * anywhere in the range of time_t. */
	long double real_delta = ((long double)real.tv_sec - (long double)cs->prev_check_real.tv_sec) * NS_PER_S +
				 (long double)(real.tv_nsec - cs->prev_check_real.tv_nsec);
	long double mono_delta = (long double)mono_ns - (long double)cs->prev_check_mono_ns;
	long double drift = real_delta - mono_delta;

	return drift < 0 ? -drift : drift;
}

enum clock_sync_verdict clock_sync_check(struct clock_sync *cs, struct timespec real, uint64_t mono_ns,
					 uint64_t *unix_nanos)
{
	bool due;

	if (!cs->started) {
		due = true;
	} else {
		due = mono_ns - cs->last_sync_mono_ns >= (uint64_t)CLOCK_SYNC_INTERVAL_MS * NS_PER_MS ||
		      clock_drift_ns(cs, real, mono_ns) >= (long double)CLOCK_SYNC_JUMP_MS * NS_PER_MS;
	}
	cs->prev_check_real = real;
	cs->prev_check_mono_ns = mono_ns;

	if (!due)
		return CLOCK_SYNC_NONE;
	if (!to_unix_nanos(real, unix_nanos))
		return CLOCK_SYNC_INVALID;
	cs->started = true;
	cs->last_sync_mono_ns = mono_ns;
	return CLOCK_SYNC_SEND;
}
