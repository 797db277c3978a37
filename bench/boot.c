/* bench/boot: how much msb adds to a bare boot.
 *
 * Measures, interleaved in one run so that machine noise hits both alike:
 *   - the wall time of `msb run -- true` (start the sandbox process, boot,
 *     handshake, run `true`, shut down, clean up);
 *   - bare QEMU booting the same kernel and initramfs, with the same
 *     machine and devices, to an init that powers off at once (the agent
 *     with MSB_PROBE=1).
 * Prints both medians and their ratio (target: at most 1.25), then the
 * time to core.ready through the C API and the peak RSS of the sandbox
 * process and of QEMU.
 *
 * BENCH_ROUNDS sets the number of rounds (default 10).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/base/files.h"
#include "../src/base/home.h"
#include "../src/engine/engine.h"
#include "../src/guest/assets.h"
#include "../src/guest/cmdline.h"
#include "../src/runtime/accel.h"
#include "msb/msb.h"

#define DEFAULT_ROUNDS 10
#define READY_ROUNDS 3
#define TARGET_RATIO 1.25

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), compare_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One bare boot: QEMU as msb starts it, with an init that powers off. */
static double bare_boot(const struct guest_assets *a, const struct accel_verdict *v)
{
	struct cmdline_params params = { .hostname = "bench", .tsc_khz = v->tsc_khz,
					 .tcg = v->accel == ENGINE_ACCEL_TCG, .probe = true };
	char cmdline[1024], console[64];
	struct engine_config c;
	struct engine_vm vm;
	msb_error err;
	int sv[2], status;
	double start;

	cmdline_build(cmdline, sizeof(cmdline), &params);
	snprintf(console, sizeof(console), "/tmp/msb-bench-boot-%d.log", (int)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	memset(&c, 0, sizeof(c));
	c.name = "bench-bare";
	c.kernel = a->kernel;
	c.initramfs = a->initramfs;
	c.cmdline = cmdline;
	c.root_image = a->root_image;
	c.cpus = 1;
	c.memory_mib = 512;
	c.accel = v->accel;
	c.agent_fd = sv[1];
	c.console_log = console;

	start = now_ms();
	if (engine_qemu.start(&c, &vm, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		return -1;
	}
	close(sv[1]);
	waitpid(vm.pid, &status, 0);
	close(vm.diag_fd);
	close(sv[0]);
	unlink(console);
	return now_ms() - start;
}

static double msb_run_true(const char *msb)
{
	double start = now_ms();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execl(msb, msb, "run", "--", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench: msb run -- true failed (status 0x%x)\n", status);
		return -1;
	}
	return now_ms() - start;
}

static long peak_rss_kib(pid_t pid)
{
	char path[64], *status, *line;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (files_read_all(path, 65536, &status, NULL) < 0)
		return -1;
	line = strstr(status, "VmHWM:");
	if (line)
		kib = strtol(line + 6, NULL, 10);
	free(status);
	return kib;
}

/* The sandbox process's pid, from its pid file, and its QEMU child. */
static void sandbox_pids(const char *name, pid_t *sandbox, pid_t *qemu)
{
	char path[PATH_MAX], *text;

	*sandbox = *qemu = 0;
	home_path(path, sizeof(path), "sandboxes/%s/sandbox.pid", name);
	if (files_read_all(path, 64, &text, NULL) < 0)
		return;
	*sandbox = (pid_t)atoi(text);
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)*sandbox, (int)*sandbox);
	if (files_read_all(path, 4096, &text, NULL) == 0) {
		*qemu = (pid_t)atoi(text);
		free(text);
	}
}

static void measure_ready(const char *msb)
{
	double ready[READY_ROUNDS];
	long rss_sandbox = -1, rss_qemu = -1;
	int n = 0;

	for (int i = 0; i < READY_ROUNDS; i++) {
		msb_sandbox_options o = { .runtime_path = msb, .ephemeral = true };
		char name[32];
		msb_sandbox *sb;
		msb_client *c;
		msb_output out;
		msb_error err;
		pid_t sandbox_pid, qemu_pid;
		double start = now_ms();

		snprintf(name, sizeof(name), "bench-ready-%d-%d", (int)getpid(), i);
		o.name = name;
		if (msb_sandbox_create(&o, &sb, &err) < 0) {
			fprintf(stderr, "bench: %s\n", err.message);
			continue;
		}
		ready[n++] = now_ms() - start;

		/* Peak RSS once a command has run, as after a typical use. */
		if (msb_connect(name, &c, &err) == 0) {
			const char *args[] = { "-c", "print(6*7)", NULL };

			if (msb_exec_collect(c, "python3", args, NULL, &out, &err) == 0)
				msb_output_free(&out);
			msb_disconnect(c);
		}
		sandbox_pids(name, &sandbox_pid, &qemu_pid);
		if (sandbox_pid > 0)
			rss_sandbox = peak_rss_kib(sandbox_pid);
		if (qemu_pid > 0)
			rss_qemu = peak_rss_kib(qemu_pid);
		msb_sandbox_stop(sb, 10, NULL);
		msb_sandbox_free(sb);
	}
	if (n > 0)
		printf("time to ready (msb_sandbox_start until core.ready): median %.0f ms over %d boots\n",
		       median(ready, n), n);
	printf("peak RSS after one python3 exec: sandbox process %ld KiB, QEMU %ld KiB\n", rss_sandbox, rss_qemu);
}

int main(int argc, char **argv)
{
	const char *rounds_env = getenv("BENCH_ROUNDS");
	int rounds = rounds_env ? atoi(rounds_env) : DEFAULT_ROUNDS;
	char msb[PATH_MAX];
	struct guest_assets assets;
	struct accel_verdict verdict;
	msb_error err;
	double *bare, *run, bare_median, run_median;
	int n = 0;

	if (rounds < 1)
		rounds = DEFAULT_ROUNDS;
	if (!realpath(argc > 1 ? argv[1] : "build/msb", msb)) {
		fprintf(stderr, "bench: msb binary not found; run from the source tree or pass its path\n");
		return 1;
	}
	if (assets_find(&assets, NULL, &err) < 0 || assets_prepare_initramfs(&assets, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		return 1;
	}
	accel_choose(&assets, &verdict);
	printf("boot benchmark: %d rounds, accelerator %s\n", rounds, engine_accel_name(verdict.accel));

	bare = calloc((size_t)rounds, sizeof(*bare));
	run = calloc((size_t)rounds, sizeof(*run));
	/* One warm-up of each fills the page cache with kernel and image. */
	bare_boot(&assets, &verdict);
	msb_run_true(msb);
	for (int i = 0; i < rounds; i++) {
		double b = bare_boot(&assets, &verdict);
		double r = msb_run_true(msb);

		if (b < 0 || r < 0)
			continue;
		bare[n] = b;
		run[n] = r;
		n++;
	}
	if (n == 0) {
		fprintf(stderr, "bench: no successful round\n");
		return 1;
	}
	bare_median = median(bare, n);
	run_median = median(run, n);
	printf("bare QEMU boot to init and power-off: median %.0f ms\n", bare_median);
	printf("msb run -- true:                      median %.0f ms\n", run_median);
	printf("boot ratio (msb run / bare boot): %.2f (target <= %.2f)\n", run_median / bare_median, TARGET_RATIO);

	measure_ready(msb);
	free(bare);
	free(run);
	return 0;
}
