/* The accelerator probe and its per-boot cache. */
#include "accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "../base/files.h"
#include "../base/home.h"
#include "../base/index.h"
#include "../guest/cmdline.h"
#include "log.h"

#define KVM_EXPECTED_API_VERSION 12
#define PROBE_MARKER "msb-agentd: probe ok"
#define PROBE_MEMORY_MIB 256
/* The TSC is measured against CLOCK_MONOTONIC_RAW over this long. */
#define TSC_MEASURE_NS 20000000L

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The guest's TSC under TCG is the host's, and the guest kernel sometimes
 * fails to calibrate it against the emulated PIT (then the guest hangs
 * early in boot); telling it the frequency avoids the calibration. */
static unsigned measure_tsc_khz(void)
{
	struct timespec pause = { 0, TSC_MEASURE_NS };
	uint64_t t0 = now_ns(CLOCK_MONOTONIC_RAW), c0 = __rdtsc();
	uint64_t t1, c1;

	nanosleep(&pause, NULL);
	t1 = now_ns(CLOCK_MONOTONIC_RAW);
	c1 = __rdtsc();
	if (t1 <= t0 || c1 <= c0)
		return 0;
	return (unsigned)((double)(c1 - c0) * 1e6 / (double)(t1 - t0));
}

static bool host_has_constant_tsc(void)
{
	char *cpuinfo;
	bool found;

	if (files_read_all("/proc/cpuinfo", 16 * 1024 * 1024, &cpuinfo, NULL) < 0)
		return false;
	found = strstr(cpuinfo, " constant_tsc") && strstr(cpuinfo, " nonstop_tsc");
	free(cpuinfo);
	return found;
}

static bool load_cache(const char *boot_id, struct accel_verdict *v)
{
	char path[4096], *data, accel[16] = "", cached_boot[64] = "";
	unsigned tsc = 0;
	char *reason;
	bool ok = false;

	home_path(path, sizeof(path), "cache/accel");
	if (files_read_all(path, 4096, &data, NULL) < 0)
		return false;
	reason = strstr(data, "reason=");
	if (sscanf(data, "boot_id=%63s accel=%15s tsc_khz=%u", cached_boot, accel, &tsc) == 3 && reason &&
	    strcmp(cached_boot, boot_id) == 0 && (strcmp(accel, "kvm") == 0 || strcmp(accel, "tcg") == 0)) {
		reason += strlen("reason=");
		reason[strcspn(reason, "\n")] = 0;
		v->accel = strcmp(accel, "kvm") == 0 ? ENGINE_ACCEL_KVM : ENGINE_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "%s", reason);
		v->tsc_khz = tsc;
		v->cached = true;
		ok = true;
	}
	free(data);
	return ok;
}

static void save_cache(const char *boot_id, const struct accel_verdict *v)
{
	char path[4096], dir[4096], text[512];
	int n;

	home_path(dir, sizeof(dir), "cache");
	home_path(path, sizeof(path), "cache/accel");
	n = snprintf(text, sizeof(text), "boot_id=%s\naccel=%s\ntsc_khz=%u\nreason=%s\n", boot_id,
		     engine_accel_name(v->accel), v->tsc_khz, v->reason);
	if (files_mkdir_p(dir, 0755) < 0 || files_write_atomic(path, text, (size_t)n, 0644) < 0)
		log_warn("accel", "could not save the verdict to %s", path);
}

/* Can this process create a KVM VM at all? Fills why when not. */
static bool kvm_usable(char *why, size_t why_len)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int version, vm;

	if (fd < 0) {
		snprintf(why, why_len, "cannot open /dev/kvm: %s", strerror(errno));
		return false;
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_EXPECTED_API_VERSION) {
		snprintf(why, why_len, "/dev/kvm reports API version %d, expected %d", version,
			 KVM_EXPECTED_API_VERSION);
		close(fd);
		return false;
	}
	vm = ioctl(fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		snprintf(why, why_len, "KVM_CREATE_VM failed: %s", strerror(errno));
		close(fd);
		return false;
	}
	close(vm);
	close(fd);
	return true;
}

static bool file_contains(const char *path, const char *needle)
{
	char *data;
	bool found;

	if (files_read_all(path, 16 * 1024 * 1024, &data, NULL) < 0)
		return false;
	found = strstr(data, needle) != NULL;
	free(data);
	return found;
}

/* Boots the guest kernel under KVM with an init that prints a marker and
 * powers off at once. Returns true when the marker appeared in time. */
static bool probe_boot(const struct guest_assets *assets, char *why, size_t why_len)
{
	char console[4096], diag[512] = "", cmdline[1024];
	struct cmdline_params params = { .probe = true };
	struct engine_config c;
	struct engine_vm vm;
	msb_error err;
	int sv[2], status = 0;
	bool exited = false;
	uint64_t deadline;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, why_len, "probe: socketpair: %s", strerror(errno));
		return false;
	}
	snprintf(console, sizeof(console), "/tmp/msb-accel-probe-%d.log", (int)getpid());
	memset(&c, 0, sizeof(c));
	c.name = "accel-probe";
	c.kernel = assets->kernel;
	c.initramfs = assets->initramfs;
	cmdline_build(cmdline, sizeof(cmdline), &params);
	c.cmdline = cmdline;
	c.cpus = 1;
	c.memory_mib = PROBE_MEMORY_MIB;
	c.accel = ENGINE_ACCEL_KVM;
	c.agent_fd = sv[1];
	c.console_log = console;

	if (engine_qemu.start(&c, &vm, &err) < 0) {
		snprintf(why, why_len, "probe: %s", err.message);
		close(sv[0]);
		close(sv[1]);
		return false;
	}
	close(sv[1]);

	deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)ACCEL_PROBE_TIMEOUT_MS * 1000000ull;
	while (now_ns(CLOCK_MONOTONIC) < deadline) {
		struct timespec step = { 0, 20000000 };

		if (waitpid(vm.pid, &status, WNOHANG) == vm.pid) {
			exited = true;
			break;
		}
		nanosleep(&step, NULL);
	}
	if (!exited) {
		engine_qemu.kill(&vm);
		waitpid(vm.pid, &status, 0);
	}
	if (read(vm.diag_fd, diag, sizeof(diag) - 1) > 0)
		diag[strcspn(diag, "\n")] = 0;
	close(vm.diag_fd);
	close(sv[0]);

	if (file_contains(console, PROBE_MARKER)) {
		unlink(console);
		return true;
	}
	unlink(console);
	if (!exited)
		snprintf(why, why_len, "a KVM guest did not reach init within %d ms", ACCEL_PROBE_TIMEOUT_MS);
	else if (diag[0])
		snprintf(why, why_len, "QEMU with KVM failed: %s", diag);
	else
		snprintf(why, why_len, "a KVM guest stopped before init (status %d)", status);
	return false;
}

void accel_choose(const struct guest_assets *assets, struct accel_verdict *v)
{
	const char *forced = getenv("MSB_ACCEL");
	char boot_id[64], why[200];

	memset(v, 0, sizeof(*v));
	index_boot_id(boot_id, sizeof(boot_id));

	if (forced && (strcmp(forced, "kvm") == 0 || strcmp(forced, "tcg") == 0)) {
		struct accel_verdict cached;

		memset(&cached, 0, sizeof(cached));
		v->tsc_khz = load_cache(boot_id, &cached) ? cached.tsc_khz
							  : (host_has_constant_tsc() ? measure_tsc_khz() : 0);
		v->accel = strcmp(forced, "kvm") == 0 ? ENGINE_ACCEL_KVM : ENGINE_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "set by MSB_ACCEL=%s", forced);
		return;
	}
	if (forced && *forced)
		log_warn("accel", "MSB_ACCEL=%s is not kvm or tcg; ignored", forced);

	if (load_cache(boot_id, v))
		return;

	v->tsc_khz = host_has_constant_tsc() ? measure_tsc_khz() : 0;
	if (!kvm_usable(why, sizeof(why))) {
		v->accel = ENGINE_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "TCG because %s", why);
	} else if (!probe_boot(assets, why, sizeof(why))) {
		v->accel = ENGINE_ACCEL_TCG;
		snprintf(v->reason, sizeof(v->reason), "TCG because /dev/kvm opens but %s", why);
	} else {
		v->accel = ENGINE_ACCEL_KVM;
		snprintf(v->reason, sizeof(v->reason), "KVM because a probe guest booted to init under KVM");
	}
	save_cache(boot_id, v);
}
