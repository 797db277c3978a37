/* Tests when clock_sync_check() decides to send core.clock.sync, using
 * made-up wall and monotonic times. */
#include <stdint.h>
#include <time.h>

#include "../../src/runtime/clock_sync.h"
#include "test.h"

#define NS_PER_S 1000000000ull
#define NS_PER_MS 1000000ull

/* 2025-12-04T00:00:00.123456789Z. The nonzero tv_nsec shows that the sent
 * value keeps the nanoseconds. */
#define BASE_SEC 1764806400ll
#define BASE_NSEC 123456789l
#define BASE_UNIX_NS (1764806400ull * NS_PER_S + 123456789ull)
/* The monotonic clock starts at an arbitrary value, not at zero. */
#define BASE_MONO_NS (5000ull * NS_PER_S)

/* The wall time BASE plus offset_ms (which may be negative). */
static struct timespec wall_at(long long offset_ms)
{
	long long ns = (long long)BASE_NSEC + (offset_ms % 1000) * 1000000ll;
	struct timespec t;

	t.tv_sec = (time_t)(BASE_SEC + offset_ms / 1000);
	if (ns < 0) {
		ns += 1000000000ll;
		t.tv_sec--;
	} else if (ns >= 1000000000ll) {
		ns -= 1000000000ll;
		t.tv_sec++;
	}
	t.tv_nsec = (long)ns;
	return t;
}

static uint64_t mono_at(uint64_t offset_ms)
{
	return BASE_MONO_NS + offset_ms * NS_PER_MS;
}

static uint64_t unix_ns_at(long long offset_ms)
{
	return (uint64_t)((long long)BASE_UNIX_NS + offset_ms * 1000000ll);
}

/* Runs the first check, at wall time BASE and monotonic time BASE, which
 * must send. */
static void start_synced(struct clock_sync *cs)
{
	uint64_t nanos = 0;

	memset(cs, 0, sizeof(*cs));
	CHECK_INT_EQ(clock_sync_check(cs, wall_at(0), mono_at(0), &nanos), CLOCK_SYNC_SEND);
}

/* Checks every poll period from first_ms up to last_ms (inclusive) with the
 * wall clock wall_offset_ms ahead of the monotonic offset; each must return
 * NONE. */
static void check_quiet(struct clock_sync *cs, uint64_t first_ms, uint64_t last_ms, long long wall_offset_ms)
{
	uint64_t nanos;

	for (uint64_t t = first_ms; t <= last_ms; t += CLOCK_SYNC_POLL_MS) {
		enum clock_sync_verdict v = clock_sync_check(cs, wall_at((long long)t + wall_offset_ms), mono_at(t), &nanos);

		if (v != CLOCK_SYNC_NONE) {
			test_fail(__FILE__, __LINE__, "check at %llu ms returned %d, expected NONE", (unsigned long long)t,
				  (int)v);
			return;
		}
	}
}

TEST(clock_sync_first_check)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	memset(&cs, 0, sizeof(cs));
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(0), mono_at(0), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == BASE_UNIX_NS);
}

TEST(clock_sync_interval)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	start_synced(&cs);
	check_quiet(&cs, 2000, 58000, 0);

	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(60000), mono_at(60000), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == unix_ns_at(60000));

	/* The next interval counts from the send at 60 s. */
	check_quiet(&cs, 62000, 118000, 0);
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(120000), mono_at(120000), &nanos), CLOCK_SYNC_SEND);
}

TEST(clock_sync_after_jump)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	start_synced(&cs);
	check_quiet(&cs, 2000, 10000, 0);

	/* The wall clock advances 8 s while the monotonic clock advances 2 s:
	 * a 6 s jump, the threshold itself. */
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(18000), mono_at(12000), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == unix_ns_at(18000));
}

TEST(clock_sync_small_jump_ignored)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	start_synced(&cs);
	check_quiet(&cs, 2000, 10000, 0);

	/* 7.9 s of wall time in 2 s of monotonic time: a 5.9 s jump. */
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(17900), mono_at(12000), &nanos), CLOCK_SYNC_NONE);
	/* The jump is measured between consecutive checks, so it does not
	 * add up: the clocks now move together again. */
	check_quiet(&cs, 14000, 58000, 5900);
}

TEST(clock_sync_backward_jump)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	start_synced(&cs);
	check_quiet(&cs, 2000, 10000, 0);

	/* The wall clock goes back 4 s while the monotonic clock advances
	 * 2 s: a jump of 6 s backwards. */
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(6000), mono_at(12000), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == unix_ns_at(6000));
}

TEST(clock_sync_interval_after_jump)
{
	struct clock_sync cs;
	uint64_t nanos = 0;

	start_synced(&cs);
	check_quiet(&cs, 2000, 10000, 0);
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(18000), mono_at(12000), &nanos), CLOCK_SYNC_SEND);

	/* 60 s after the first sync (mono 60 s) nothing is due, because the
	 * jump at mono 12 s restarted the interval. */
	check_quiet(&cs, 14000, 70000, 6000);
	CHECK_INT_EQ(clock_sync_check(&cs, wall_at(78000), mono_at(72000), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == unix_ns_at(78000));
}

TEST(clock_sync_before_epoch)
{
	struct clock_sync cs;
	struct timespec before = { .tv_sec = -1, .tv_nsec = 999999999 };
	struct timespec after = { .tv_sec = 0, .tv_nsec = 500000000 };
	uint64_t nanos = 0;

	/* Monotonic times just after boot and wall times near the epoch keep
	 * both the interval and the jump rule quiet here: the clocks move
	 * 1.5 s apart, and the monotonic clock never reaches 60 s. So only the
	 * first sync still being due can make the second check send. */
	memset(&cs, 0, sizeof(cs));
	CHECK_INT_EQ(clock_sync_check(&cs, before, 1 * NS_PER_S, &nanos), CLOCK_SYNC_INVALID);
	CHECK_INT_EQ(clock_sync_check(&cs, after, 3 * NS_PER_S, &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == 500000000ull);
}

TEST(clock_sync_u64_limit)
{
	struct clock_sync cs;
	/* UINT64_MAX ns is 18446744073.709551615 s. */
	struct timespec last = { .tv_sec = 18446744073ll, .tv_nsec = 709551615 };
	struct timespec over = { .tv_sec = 18446744073ll, .tv_nsec = 709551616 };
	uint64_t nanos = 0;

	memset(&cs, 0, sizeof(cs));
	CHECK_INT_EQ(clock_sync_check(&cs, over, mono_at(0), &nanos), CLOCK_SYNC_INVALID);

	memset(&cs, 0, sizeof(cs));
	CHECK_INT_EQ(clock_sync_check(&cs, last, mono_at(0), &nanos), CLOCK_SYNC_SEND);
	CHECK(nanos == UINT64_MAX);
}
