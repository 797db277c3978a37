/* bench/exec: the round trip of running a command in a warm sandbox.
 *
 * Baseline: one byte echoed by a `cat` session over the same agent
 * channel (client, relay, virtio-console, agent, pipes, and back).
 * Measured against it, in the same run:
 *   - C API: msb_exec_collect() of `true` on an open connection
 *     (target: at most 1.5 times the echo);
 *   - CLI: `msb exec NAME -- true`, a process start, connect and exec
 *     (target: at most 3 times the echo).
 * BENCH_ROUNDS sets the rounds (default 30).
 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "bench.h"

struct echo {
	bool got;
};

static void on_echo(void *data, const void *bytes, size_t len)
{
	((struct echo *)data)->got = true;
}

static double echo_round_trip(msb_client *c, msb_exec *cat, struct echo *echo)
{
	msb_error err;
	double start = bench_now_ms();

	echo->got = false;
	if (msb_exec_write_stdin(cat, "x", 1, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		exit(1);
	}
	while (!echo->got)
		if (msb_client_dispatch(c, -1, &err) < 0) {
			fprintf(stderr, "bench: %s\n", err.message);
			exit(1);
		}
	return bench_now_ms() - start;
}

static double api_round_trip(msb_client *c)
{
	msb_output out;
	msb_error err;
	double start = bench_now_ms();

	if (msb_exec_collect(c, "true", NULL, NULL, &out, &err) < 0 || out.status.exit_code != 0) {
		fprintf(stderr, "bench: exec true: %s\n", err.message);
		exit(1);
	}
	msb_output_free(&out);
	return bench_now_ms() - start;
}

static double cli_round_trip(const char *msb, const char *name)
{
	double start = bench_now_ms();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execl(msb, msb, "exec", name, "--", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: msb exec failed (status 0x%x)\n", status);
		exit(1);
	}
	return bench_now_ms() - start;
}

int main(int argc, char **argv)
{
	const char *const cat_args[] = { NULL };
	msb_exec_callbacks callbacks = { .on_stdout = on_echo };
	int rounds = bench_rounds(30);
	double *echo_ms = calloc((size_t)rounds, sizeof(double));
	double *api_ms = calloc((size_t)rounds, sizeof(double));
	double *cli_ms = calloc((size_t)rounds, sizeof(double));
	double echo_median, api_median, cli_median;
	char msb[PATH_MAX];
	struct echo echo;
	msb_sandbox *sb;
	msb_client *c;
	msb_exec *cat;
	msb_error err;

	sb = bench_sandbox(argc, argv, "bench-exec", 0, NULL, msb);
	if (msb_connect(msb_sandbox_name(sb), &c, &err) < 0 ||
	    msb_exec_start(c, "cat", cat_args, NULL, &callbacks, &echo, &cat, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		return 1;
	}

	/* Warm-up: page cache and the guest's own caches. */
	echo_round_trip(c, cat, &echo);
	api_round_trip(c);
	cli_round_trip(msb, msb_sandbox_name(sb));
	for (int i = 0; i < rounds; i++) {
		echo_ms[i] = echo_round_trip(c, cat, &echo);
		api_ms[i] = api_round_trip(c);
		cli_ms[i] = cli_round_trip(msb, msb_sandbox_name(sb));
	}
	echo_median = bench_median(echo_ms, rounds);
	api_median = bench_median(api_ms, rounds);
	cli_median = bench_median(cli_ms, rounds);

	printf("exec benchmark: %d rounds\n", rounds);
	printf("echo over the agent channel: median %.2f ms\n", echo_median);
	printf("C API exec of true:          median %.2f ms\n", api_median);
	printf("msb exec NAME -- true:       median %.2f ms\n", cli_median);
	printf("exec ratio, C API / echo: %.2f (target <= 1.5)\n", api_median / echo_median);
	printf("exec ratio, CLI / echo:   %.2f (target <= 3)\n", cli_median / echo_median);

	msb_exec_close_stdin(cat, NULL);
	msb_exec_wait(cat, NULL, NULL);
	msb_exec_free(cat);
	msb_disconnect(c);
	msb_sandbox_stop(sb, 10, NULL);
	msb_sandbox_free(sb);
	return 0;
}
