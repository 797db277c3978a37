/* Helpers shared by the benchmarks: clocks, medians, a sandbox to measure
 * in. Each benchmark prints ratios against a baseline measured in the
 * same run, since these machines are noisy. */
#ifndef MSB_BENCH_H
#define MSB_BENCH_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "msb/msb.h"

static inline double bench_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static inline int bench_compare(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static inline double bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_compare);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline int bench_rounds(int fallback)
{
	const char *env = getenv("BENCH_ROUNDS");
	int n = env ? atoi(env) : 0;

	return n > 0 ? n : fallback;
}

/* Boots a sandbox for a benchmark; exits on failure. msb is the path of
 * the msb binary (argv[1], default build/msb). */
static inline msb_sandbox *bench_sandbox(int argc, char **argv, const char *prefix, unsigned memory_mib,
					 const char *const *mounts, char *msb_path)
{
	msb_sandbox_options o = { .memory_mib = memory_mib, .ephemeral = true, .mounts = mounts };
	static char name[64];
	msb_sandbox *sb;
	msb_error err;

	if (!realpath(argc > 1 ? argv[1] : "build/msb", msb_path)) {
		fprintf(stderr, "bench: msb binary not found; run from the source tree or pass its path\n");
		exit(1);
	}
	snprintf(name, sizeof(name), "%s-%d", prefix, (int)getpid());
	o.name = name;
	o.runtime_path = msb_path;
	if (msb_sandbox_create(&o, &sb, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		exit(1);
	}
	return sb;
}

#endif
