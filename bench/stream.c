/* bench/stream: throughput of a command's stdout from the guest to a C
 * API client.
 *
 * A 256 MiB file is made in the guest's memory (/dev/shm), then:
 *   - raw copy: the agent reads that file and streams it over the same
 *     channel (a file read of the protocol: no process, no pipe);
 *   - exec stdout: `cat` of the same file, read by a C API client.
 * Prints both throughputs and their ratio (target: at least 0.7).
 * BENCH_ROUNDS sets the rounds (default 3).
 */
#include <string.h>

#include "bench.h"

#define STREAM_MIB 256
#define STREAM_FILE "/dev/shm/stream.bin"

struct counter {
	unsigned long long bytes;
};

static int count_sink(void *data, const void *bytes, size_t len)
{
	((struct counter *)data)->bytes += len;
	return 0;
}

static void count_stdout(void *data, const void *bytes, size_t len)
{
	((struct counter *)data)->bytes += len;
}

static void fail(const char *what, const msb_error *err)
{
	fprintf(stderr, "bench: %s: %s\n", what, err->message);
	exit(1);
}

static double raw_copy_mib_s(msb_client *c)
{
	struct counter n = { 0 };
	msb_error err;
	double start = bench_now_ms();

	if (msb_fs_read_stream(c, STREAM_FILE, count_sink, &n, &err) < 0)
		fail("read " STREAM_FILE, &err);
	if (n.bytes != (unsigned long long)STREAM_MIB << 20) {
		fprintf(stderr, "bench: raw copy got %llu bytes\n", n.bytes);
		exit(1);
	}
	return STREAM_MIB / ((bench_now_ms() - start) / 1000.0);
}

static double exec_stdout_mib_s(msb_client *c)
{
	const char *args[] = { STREAM_FILE, NULL };
	msb_exec_callbacks callbacks = { .on_stdout = count_stdout };
	struct counter n = { 0 };
	msb_exec_status status;
	msb_exec *e;
	msb_error err;
	double start = bench_now_ms();

	if (msb_exec_start(c, "cat", args, NULL, &callbacks, &n, &e, &err) < 0 ||
	    msb_exec_close_stdin(e, &err) < 0 || msb_exec_wait(e, &status, &err) < 0)
		fail("cat " STREAM_FILE, &err);
	msb_exec_free(e);
	if (n.bytes != (unsigned long long)STREAM_MIB << 20 || status.exit_code != 0) {
		fprintf(stderr, "bench: cat gave %llu bytes, exit %d\n", n.bytes, status.exit_code);
		exit(1);
	}
	return STREAM_MIB / ((bench_now_ms() - start) / 1000.0);
}

int main(int argc, char **argv)
{
	const char *make_args[] = { "-c", "head -c " "268435456" " /dev/zero > " STREAM_FILE, NULL };
	int rounds = bench_rounds(3);
	double *raw = calloc((size_t)rounds, sizeof(double));
	double *exec = calloc((size_t)rounds, sizeof(double));
	double raw_median, exec_median;
	char msb[PATH_MAX];
	msb_sandbox *sb;
	msb_client *c;
	msb_output out;
	msb_error err;

	/* The file lives in guest memory: give the guest room for it. */
	sb = bench_sandbox(argc, argv, "bench-stream", 1024, NULL, msb);
	if (msb_connect(msb_sandbox_name(sb), &c, &err) < 0)
		fail("connect", &err);
	if (msb_exec_collect(c, "sh", make_args, NULL, &out, &err) < 0 || out.status.exit_code != 0)
		fail("create " STREAM_FILE, &err);
	msb_output_free(&out);

	for (int i = 0; i < rounds; i++) {
		raw[i] = raw_copy_mib_s(c);
		exec[i] = exec_stdout_mib_s(c);
	}
	raw_median = bench_median(raw, rounds);
	exec_median = bench_median(exec, rounds);
	printf("stream benchmark: %d MiB, %d rounds\n", STREAM_MIB, rounds);
	printf("raw copy over the channel (file read): median %.1f MiB/s\n", raw_median);
	printf("exec stdout to a C API client (cat):   median %.1f MiB/s\n", exec_median);
	printf("stream ratio, exec stdout / raw copy: %.2f (target >= 0.7)\n", exec_median / raw_median);

	msb_disconnect(c);
	msb_sandbox_stop(sb, 10, NULL);
	msb_sandbox_free(sb);
	return 0;
}
