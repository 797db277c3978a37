/* The sandbox process: boot, relay, clock sync, policies, stop.
 *
 * Its configuration is the sandbox's row in the index; the process keeps
 * the row's state current (creating, running, draining, stopped, crashed)
 * and records why the sandbox stopped.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP stop the guest gracefully
 * (core.shutdown, then a hard stop after SANDBOX_STOP_TIMEOUT_MS); SIGUSR1
 * stops the VM at once.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"
#include "../base/home.h"
#include "../base/index.h"
#include "../base/monotonic.h"
#include "../engine/engine.h"
#include "../guest/assets.h"
#include "../guest/cmdline.h"
#include "../guest/upper.h"
#include "../proto/frame.h"
#include "accel.h"
#include "boot_error.h"
#include "clock_sync.h"
#include "exec_log.h"
#include "log.h"
#include "policy.h"
#include "relay.h"
#include "shares.h"

/* Lines of QEMU's diagnostics kept for a boot error message. */
#define DIAG_KEEP_BYTES 1024
/* After the agent channel closes, QEMU gets this long to exit by itself. */
#define GUEST_EXIT_GRACE_MS 5000

enum sandbox_phase {
	PHASE_BOOTING,
	PHASE_RUNNING,
	PHASE_STOPPING,
	PHASE_DONE,
};

struct sandbox {
	const char *name;
	int ready_fd;
	unsigned boot_timeout_s;
	struct sandbox_record rec;
	struct index *index;
	char dir[PATH_MAX];
	char socket_path[PATH_MAX + 16];
	char console_path[PATH_MAX + 16];
	char upper_path[PATH_MAX + 16];
	struct guest_assets assets;
	struct accel_verdict accel;
	struct loop *loop;
	struct relay *relay;
	struct exec_log *exec_log;
	int guest_fd;
	int listen_fd;
	int signal_fd;
	struct engine_vm vm;
	bool vm_running;
	int vm_status;
	struct rusage vm_usage;
	enum sandbox_phase phase;
	const char *stop_reason;
	bool crashed;
	int exit_status;
	char diag[DIAG_KEEP_BYTES];
	size_t diag_len;
	struct clock_sync clock;
	bool clock_error_logged;
	struct policy policy;
	struct mount_spec mounts[MOUNTS_MAX];
	size_t n_mounts;
	bool has_shares;
	struct shares shares;
	struct loop_watch *boot_timer, *stop_timer, *clock_timer, *policy_timer, *signal_watch, *diag_watch;
	uint64_t start_ns;
};

/* ---- Options ---- */

static int parse_uint(const char *text, const char *what, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || end == text || v < min || v > max) {
		fprintf(stderr, "msb sandbox: invalid %s \"%s\": expected a number from %u to %u\n", what, text, min,
			max);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct sandbox *sb)
{
	static const struct option long_options[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "boot-timeout", required_argument, NULL, 't' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned value;
	int c;

	sb->boot_timeout_s = SANDBOX_DEFAULT_BOOT_TIMEOUT_S;
	sb->ready_fd = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			sb->name = optarg;
			break;
		case 't':
			if (parse_uint(optarg, "--boot-timeout", 1, 3600, &sb->boot_timeout_s) < 0)
				return -EINVAL;
			break;
		case 'r':
			if (parse_uint(optarg, "--ready-fd", 3, 65535, &value) < 0)
				return -EINVAL;
			sb->ready_fd = (int)value;
			break;
		default:
			return -EINVAL;
		}
	}
	if (!sb->name) {
		fprintf(stderr, "usage: msb sandbox --name NAME [--ready-fd FD] [--boot-timeout SECS]\n"
				"Runs the sandbox NAME of the index; `msb create` and `msb start` use it.\n");
		return -EINVAL;
	}
	return 0;
}

/* ---- State ---- */

static void set_state(struct sandbox *sb, const char *state, const char *reason)
{
	msb_error err;

	if (index_set_state(sb->index, sb->name, state, reason, &err) < 0)
		log_error("sandbox", "record state %s: %s", state, err.message);
}

static void notify_ready_fd(struct sandbox *sb, const char *line)
{
	if (sb->ready_fd < 0)
		return;
	if (files_write_full(sb->ready_fd, line, strlen(line)) < 0)
		log_warn("sandbox", "could not notify the starter: %s", strerror(errno));
	close(sb->ready_fd);
	sb->ready_fd = -1;
}

/* Records a failure before ready: boot-error.json, the log, the starter. */
static void boot_failed(struct sandbox *sb, const char *stage, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void boot_failed(struct sandbox *sb, const char *stage, int err, const char *fmt, ...)
{
	char message[1024], line[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);

	log_error("sandbox", "boot failed stage=%s: %s", stage, message);
	if (sb->dir[0] && boot_error_write(sb->dir, sb->console_path, stage, err, message) < 0)
		log_error("sandbox", "write boot-error.json in %s: %s", sb->dir, strerror(errno));
	snprintf(line, sizeof(line), "error %s: %s\n", stage, message);
	notify_ready_fd(sb, line);
	sb->exit_status = SANDBOX_EXIT_BOOT_FAILED;
	sb->stop_reason = REASON_BOOT_FAILURE;
	sb->crashed = true;
}

/* ---- Stopping ---- */

static void vm_kill(struct sandbox *sb)
{
	if (sb->vm_running)
		engine_qemu.kill(&sb->vm);
}

static void on_stop_timeout(struct loop *loop, void *data)
{
	struct sandbox *sb = data;

	log_warn("sandbox", "the guest did not power off in time; stopping the VM");
	loop_remove(loop, sb->stop_timer);
	sb->stop_timer = NULL;
	vm_kill(sb);
}

static void arm_stop_timer(struct sandbox *sb, uint64_t ms)
{
	if (!sb->stop_timer)
		sb->stop_timer = loop_add_timer(sb->loop, ms, 0, on_stop_timeout, sb);
}

/* Begins a graceful stop: the guest gets core.shutdown and some time. */
static void request_stop(struct sandbox *sb, const char *reason)
{
	struct msg m;

	if (sb->phase == PHASE_STOPPING || sb->phase == PHASE_DONE)
		return;
	log_info("sandbox", "stopping: %s", reason);
	if (!sb->stop_reason)
		sb->stop_reason = reason;
	if (sb->phase == PHASE_BOOTING) {
		sb->phase = PHASE_STOPPING;
		vm_kill(sb);
		return;
	}
	sb->phase = PHASE_STOPPING;
	set_state(sb, STATE_DRAINING, reason);
	memset(&m, 0, sizeof(m));
	m.type = MSG_SHUTDOWN;
	if (relay_send_msg(sb->relay, &m) < 0)
		vm_kill(sb);
	arm_stop_timer(sb, SANDBOX_STOP_TIMEOUT_MS);
}

static void kill_now(struct sandbox *sb, const char *reason)
{
	log_info("sandbox", "stopping the VM at once: %s", reason);
	if (!sb->stop_reason)
		sb->stop_reason = reason;
	if (sb->phase == PHASE_RUNNING)
		set_state(sb, STATE_DRAINING, sb->stop_reason);
	if (sb->phase != PHASE_DONE)
		sb->phase = PHASE_STOPPING;
	vm_kill(sb);
}

/* ---- Running ---- */

static int open_listen_socket(struct sandbox *sb)
{
	struct sockaddr_un addr;
	int fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(sb->socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, sb->socket_path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sb->socket_path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, RELAY_MAX_CLIENTS) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	chmod(sb->socket_path, 0600);
	return fd;
}

static void on_clock_timer(struct loop *loop, void *data)
{
	struct sandbox *sb = data;
	struct timespec real;
	uint64_t nanos;
	struct msg m;

	clock_gettime(CLOCK_REALTIME, &real);
	switch (clock_sync_check(&sb->clock, real, monotonic_ns(), &nanos)) {
	case CLOCK_SYNC_NONE:
		return;
	case CLOCK_SYNC_INVALID:
		if (!sb->clock_error_logged)
			log_error("clock", "host clock %lld.%09ld cannot be sent: before 1970 or beyond u64 nanoseconds",
				  (long long)real.tv_sec, real.tv_nsec);
		sb->clock_error_logged = true;
		return;
	case CLOCK_SYNC_SEND:
		sb->clock_error_logged = false;
		memset(&m, 0, sizeof(m));
		m.type = MSG_CLOCK_SYNC;
		m.u.clock_sync.unix_time_nanos = nanos;
		relay_send_msg(sb->relay, &m);
		log_debug("clock", "sync sent unix_nanos=%llu", (unsigned long long)nanos);
		return;
	}
}

static void on_policy_timer(struct loop *loop, void *data)
{
	struct sandbox *sb = data;
	const char *reason = policy_check(&sb->policy, monotonic_ns(), relay_open_exec_sessions(sb->relay));

	if (reason && sb->phase == PHASE_RUNNING)
		request_stop(sb, reason);
}

static void guest_ready(struct sandbox *sb, const uint8_t *frame, size_t len, const struct msg *m)
{
	msb_error err;
	int rc;

	if (sb->phase != PHASE_BOOTING)
		return;
	rc = relay_set_ready_frame(sb->relay, frame, len);
	if (rc == 0) {
		sb->listen_fd = open_listen_socket(sb);
		rc = sb->listen_fd < 0 ? sb->listen_fd : relay_serve(sb->relay, sb->listen_fd);
	}
	if (rc < 0) {
		boot_failed(sb, "relay", -rc, "listen on %s: %s", sb->socket_path, strerror(-rc));
		request_stop(sb, REASON_BOOT_FAILURE);
		return;
	}

	loop_remove(sb->loop, sb->boot_timer);
	sb->boot_timer = NULL;
	sb->phase = PHASE_RUNNING;
	if (index_set_running(sb->index, sb->name, engine_accel_name(sb->accel.accel), &err) < 0)
		log_error("sandbox", "record running: %s", err.message);
	log_info("sandbox", "ready in %llu ms (guest: agent start %llu ms, init done %llu ms, ready %llu ms) agent=%.*s",
		 (unsigned long long)((monotonic_ns() - sb->start_ns) / 1000000),
		 (unsigned long long)(m->u.ready.boot_time_ns / 1000000),
		 (unsigned long long)(m->u.ready.init_time_ns / 1000000),
		 (unsigned long long)(m->u.ready.ready_time_ns / 1000000), (int)m->u.ready.agent_version.len,
		 m->u.ready.agent_version.ptr ? (const char *)m->u.ready.agent_version.ptr : "");

	sb->clock_timer = loop_add_timer(sb->loop, 0, CLOCK_SYNC_POLL_MS, on_clock_timer, sb);
	policy_init(&sb->policy, sb->rec.idle_timeout_s, sb->rec.max_duration_s, monotonic_ns());
	if (sb->rec.idle_timeout_s || sb->rec.max_duration_s)
		sb->policy_timer = loop_add_timer(sb->loop, POLICY_CHECK_MS, POLICY_CHECK_MS, on_policy_timer, sb);
	notify_ready_fd(sb, "ready\n");
}

static void on_guest_control(void *data, const uint8_t *frame, size_t len)
{
	struct sandbox *sb = data;
	struct msg m, ack;

	if (msg_decode(frame, len, &m) < 0) {
		log_warn("sandbox", "undecodable control frame from the guest (%zu bytes)", len);
		return;
	}
	switch (m.type) {
	case MSG_INIT_RESOLVED:
		log_info("sandbox", "guest agent resolved default user uid=%u gid=%u", m.u.init_resolved.uid,
			 m.u.init_resolved.gid);
		memset(&ack, 0, sizeof(ack));
		ack.type = MSG_INIT_ACK;
		relay_send_msg(sb->relay, &ack);
		break;
	case MSG_READY:
		guest_ready(sb, frame, len, &m);
		break;
	default:
		log_debug("sandbox", "control frame %.*s from the guest ignored", (int)m.type_name.len,
			  (const char *)m.type_name.ptr);
		break;
	}
	msg_free(&m);
}

static void on_guest_closed(void *data, const char *reason)
{
	struct sandbox *sb = data;

	log_info("sandbox", "agent channel closed: %s", reason);
	if (sb->phase == PHASE_RUNNING)
		sb->phase = PHASE_STOPPING;
	/* QEMU normally exits right after; make sure it does. */
	arm_stop_timer(sb, GUEST_EXIT_GRACE_MS);
}

static void on_client_shutdown(void *data)
{
	struct sandbox *sb = data;

	if (sb->phase == PHASE_RUNNING) {
		sb->phase = PHASE_STOPPING;
		sb->stop_reason = REASON_STOP;
		set_state(sb, STATE_DRAINING, REASON_STOP);
		arm_stop_timer(sb, SANDBOX_STOP_TIMEOUT_MS);
	}
}

static void on_activity(void *data)
{
	struct sandbox *sb = data;

	if (sb->policy_timer)
		policy_note_activity(&sb->policy, monotonic_ns());
}

static void on_exec_request(void *data, const uint8_t *frame, size_t len)
{
	exec_log_request(((struct sandbox *)data)->exec_log, frame, len);
}

static void on_exec_frame(void *data, const uint8_t *frame, size_t len)
{
	exec_log_guest_frame(((struct sandbox *)data)->exec_log, frame, len);
}

static void on_exec_abandoned(void *data, uint32_t id)
{
	exec_log_forget(((struct sandbox *)data)->exec_log, id);
}

static const struct relay_hooks sandbox_relay_hooks = {
	.on_guest_control = on_guest_control,
	.on_guest_closed = on_guest_closed,
	.on_client_shutdown = on_client_shutdown,
	.on_activity = on_activity,
	.on_exec_request = on_exec_request,
	.on_exec_frame = on_exec_frame,
	.on_exec_abandoned = on_exec_abandoned,
};

/* ---- Engine events ---- */

static void on_boot_timeout(struct loop *loop, void *data)
{
	struct sandbox *sb = data;
	char reason[512] = "";
	const char *stage = "timeout";

	loop_remove(loop, sb->boot_timer);
	sb->boot_timer = NULL;
	if (boot_error_kernel_reason(sb->console_path, reason, sizeof(reason), &stage))
		boot_failed(sb, "timeout", ETIMEDOUT, "the guest did not become ready within %u s; kernel log: %s",
			    sb->boot_timeout_s, reason);
	else
		boot_failed(sb, "timeout", ETIMEDOUT,
			    "the guest did not become ready within %u s (raise it with --boot-timeout)",
			    sb->boot_timeout_s);
	request_stop(sb, REASON_BOOT_FAILURE);
}

static void on_diag(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct sandbox *sb = data;
	char chunk[1024], *save = NULL;
	ssize_t n = read(fd, chunk, sizeof(chunk) - 1);

	if (n <= 0) {
		loop_remove(loop, sb->diag_watch);
		sb->diag_watch = NULL;
		return;
	}
	chunk[n] = 0;
	if (sb->diag_len < sizeof(sb->diag) - 1) {
		size_t room = sizeof(sb->diag) - 1 - sb->diag_len;
		size_t take = (size_t)n < room ? (size_t)n : room;

		memcpy(sb->diag + sb->diag_len, chunk, take);
		sb->diag_len += take;
		sb->diag[sb->diag_len] = 0;
	}
	for (char *line = strtok_r(chunk, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		log_warn("engine", "qemu: %s", line);
}

static void describe_vm_exit(int status, char *out, size_t len)
{
	if (WIFEXITED(status))
		snprintf(out, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(out, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(out, len, "ended with status 0x%x", status);
}

static void vm_exited(struct sandbox *sb)
{
	char how[64], reason[512] = "";
	const char *stage = "kernel";
	bool panicked;

	/* Collect what QEMU printed before it went. */
	if (sb->diag_watch)
		on_diag(sb->loop, sb->vm.diag_fd, 0, sb);
	describe_vm_exit(sb->vm_status, how, sizeof(how));
	log_info("engine", "qemu pid=%d %s peak_rss_kib=%ld", (int)sb->vm.pid, how, sb->vm_usage.ru_maxrss);
	panicked = boot_error_kernel_reason(sb->console_path, reason, sizeof(reason), &stage) &&
		   strcmp(stage, "kernel") == 0;

	switch (sb->phase) {
	case PHASE_BOOTING:
		if (sb->diag_len > 0) {
			sb->diag[strcspn(sb->diag, "\n")] = 0;
			boot_failed(sb, "engine", 0, "QEMU %s: %s", how, sb->diag);
		} else if (reason[0]) {
			boot_failed(sb, stage, 0, "the guest stopped before it was ready: %s", reason);
		} else {
			boot_failed(sb, "kernel", 0, "the guest stopped before it was ready (QEMU %s); see %s", how,
				    sb->console_path);
		}
		break;
	case PHASE_RUNNING:
		/* No stop was requested: the guest powered itself off, or the
		 * kernel panicked, or QEMU died. */
		if (panicked || !WIFEXITED(sb->vm_status) || WEXITSTATUS(sb->vm_status) != 0) {
			sb->crashed = true;
			sb->stop_reason = REASON_CRASH;
			log_error("sandbox", "the VM stopped unexpectedly (QEMU %s%s%s); kernel log kept in %s", how,
				  panicked ? "; " : "", panicked ? reason : "", sb->console_path);
		} else {
			sb->stop_reason = REASON_EXIT;
			log_info("sandbox", "the guest powered off by itself");
		}
		break;
	case PHASE_STOPPING:
		if (!sb->stop_reason) {
			sb->stop_reason = panicked ? REASON_CRASH : REASON_EXIT;
			sb->crashed = panicked;
		}
		break;
	case PHASE_DONE:
		break;
	}
	if (sb->crashed && sb->exit_status == SANDBOX_EXIT_OK)
		sb->exit_status = SANDBOX_EXIT_CRASHED;
	sb->phase = PHASE_DONE;
	loop_stop(sb->loop);
}

static void on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct sandbox *sb = data;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			int status;

			if (sb->shares.pid > 0 && waitpid(sb->shares.pid, &status, WNOHANG) == sb->shares.pid) {
				log_error("shares", "virtiofsd pid=%d ended (status 0x%x); shared directories stop "
						    "working; see %s/virtiofsd.log",
					  (int)sb->shares.pid, status, sb->dir);
				sb->shares.pid = 0;
			}
			if (sb->vm_running && wait4(sb->vm.pid, &status, WNOHANG, &sb->vm_usage) == sb->vm.pid) {
				sb->vm_running = false;
				sb->vm_status = status;
				vm_exited(sb);
				return;
			}
		} else if (si.ssi_signo == SIGUSR1) {
			kill_now(sb, REASON_KILL);
		} else {
			log_info("sandbox", "received signal %d", (int)si.ssi_signo);
			request_stop(sb, REASON_STOP);
		}
	}
}

/* ---- Setup ---- */

static int setup_signals(struct sandbox *sb)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	sb->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sb->signal_fd < 0)
		return -errno;
	sb->signal_watch = loop_add_fd(sb->loop, sb->signal_fd, EPOLLIN, on_signal, sb);
	return sb->signal_watch ? 0 : -errno;
}

static int start_vm(struct sandbox *sb, msb_error *err)
{
	struct cmdline_params params = {
		.hostname = sb->name,
		.tsc_khz = sb->accel.tsc_khz,
		.tcg = sb->accel.accel == ENGINE_ACCEL_TCG,
		.verbose = getenv("MSB_KERNEL_VERBOSE") != NULL,
		.persistent_upper = sb->rec.disk_mib > 0,
		.mounts = sb->mounts,
		.n_mounts = sb->n_mounts,
	};
	struct engine_config c;
	char cmdline[2048];
	int sv[2], rc;

	rc = cmdline_build(cmdline, sizeof(cmdline), &params);
	if (rc < 0)
		return err_set(err, rc, "the mounts do not fit in the kernel command line (%d bytes at most); use "
					"fewer or shorter guest paths",
			       CMDLINE_MAX_BYTES);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(err, -errno, "create the agent channel");

	memset(&c, 0, sizeof(c));
	c.name = sb->name;
	c.kernel = sb->assets.kernel;
	c.initramfs = sb->assets.initramfs;
	c.cmdline = cmdline;
	c.root_image = sb->assets.root_image;
	c.upper_image = sb->rec.disk_mib ? sb->upper_path : NULL;
	c.cpus = sb->rec.cpus ? sb->rec.cpus : SANDBOX_DEFAULT_CPUS;
	c.memory_mib = sb->rec.memory_mib ? sb->rec.memory_mib : SANDBOX_DEFAULT_MEMORY_MIB;
	c.accel = sb->accel.accel;
	c.agent_fd = sv[1];
	c.console_log = sb->console_path;
	if (sb->has_shares) {
		c.fs_socket = sb->shares.socket_path;
		c.fs_tag = SHARES_TAG;
	}

	rc = engine_qemu.start(&c, &sb->vm, err);
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	sb->vm_running = true;
	sb->guest_fd = sv[0];
	fcntl(sb->guest_fd, F_SETFL, fcntl(sb->guest_fd, F_GETFL) | O_NONBLOCK);
	fcntl(sb->vm.diag_fd, F_SETFL, fcntl(sb->vm.diag_fd, F_GETFL) | O_NONBLOCK);
	log_info("engine", "qemu pid=%d accel=%s cpus=%u memory_mib=%u cmdline=\"%s\"", (int)sb->vm.pid,
		 engine_accel_name(c.accel), c.cpus, c.memory_mib, cmdline);

	sb->relay = relay_new(sb->loop, sb->guest_fd, &sandbox_relay_hooks, sb);
	sb->diag_watch = loop_add_fd(sb->loop, sb->vm.diag_fd, EPOLLIN, on_diag, sb);
	if (!sb->relay || !sb->diag_watch)
		return err_sys(err, -ENOMEM, "set up the relay");
	return 0;
}

static int prepare_dir(struct sandbox *sb, msb_error *err)
{
	char path[PATH_MAX + 32], pid_text[32];
	int rc, n;

	rc = home_path(sb->dir, sizeof(sb->dir), "sandboxes/%s", sb->name);
	if (rc == 0)
		rc = files_mkdir_p(sb->dir, 0700);
	if (rc < 0)
		return err_sys(err, rc, "create sandbox directory %s", sb->dir);
	snprintf(sb->socket_path, sizeof(sb->socket_path), "%s/agent.sock", sb->dir);
	snprintf(sb->console_path, sizeof(sb->console_path), "%s/kernel.log", sb->dir);
	snprintf(sb->upper_path, sizeof(sb->upper_path), "%s/upper.ext4", sb->dir);
	snprintf(path, sizeof(path), "%s/boot-error.json", sb->dir);
	unlink(path);
	unlink(sb->console_path);

	snprintf(path, sizeof(path), "%s/sandbox.pid", sb->dir);
	n = snprintf(pid_text, sizeof(pid_text), "%d\n", (int)getpid());
	rc = files_write_atomic(path, pid_text, (size_t)n, 0644);
	if (rc < 0)
		return err_sys(err, rc, "write %s", path);
	return 0;
}

/* Loads the sandbox's row and records this process as its owner. */
static int claim_record(struct sandbox *sb, msb_error *err)
{
	char boot_id[40];
	int rc;

	rc = index_open(&sb->index, err);
	if (rc == 0)
		rc = index_get(sb->index, sb->name, &sb->rec, err);
	if (rc < 0)
		return rc;
	if (strcmp(sb->rec.state, STATE_CREATING) != 0)
		return err_set(err, -EBUSY, "sandbox %s is %s, not being started; use `msb start %s`", sb->name,
			       sb->rec.state, sb->name);
	index_boot_id(boot_id, sizeof(boot_id));
	return index_set_process(sb->index, sb->name, (int)getpid(), index_process_start_time((int)getpid()), boot_id,
				 err);
}

static void cleanup(struct sandbox *sb)
{
	char path[PATH_MAX + 16];
	bool ended_well = !sb->crashed;

	/* Stopped before the guest was ready (a signal during boot): the
	 * starter still waits for a word. */
	if (sb->ready_fd >= 0) {
		char line[200];

		snprintf(line, sizeof(line), "error stopped: the sandbox was stopped (%s) before its guest was ready\n",
			 sb->stop_reason ? sb->stop_reason : REASON_EXIT);
		notify_ready_fd(sb, line);
	}

	if (sb->vm_running) {
		engine_qemu.kill(&sb->vm);
		wait4(sb->vm.pid, NULL, 0, &sb->vm_usage);
		sb->vm_running = false;
	}
	if (sb->shares.pid > 0) {
		kill(sb->shares.pid, SIGTERM);
		waitpid(sb->shares.pid, NULL, 0);
		sb->shares.pid = 0;
	}
	if (sb->has_shares)
		unlink(sb->shares.socket_path);
	relay_free(sb->relay);
	exec_log_close(sb->exec_log);
	if (sb->listen_fd >= 0)
		close(sb->listen_fd);
	if (sb->socket_path[0])
		unlink(sb->socket_path);
	if (sb->dir[0]) {
		snprintf(path, sizeof(path), "%s/sandbox.pid", sb->dir);
		unlink(path);
	}

	{
		struct rusage self;

		getrusage(RUSAGE_SELF, &self);
		log_info("sandbox", "stopped reason=%s status=%d peak_rss_kib=%ld",
			 sb->stop_reason ? sb->stop_reason : REASON_EXIT, sb->exit_status, self.ru_maxrss);
	}
	log_close();

	if (sb->index) {
		/* An ephemeral sandbox leaves nothing behind, unless something
		 * went wrong: then its logs are what the user needs. */
		if (sb->rec.ephemeral && ended_well) {
			index_delete(sb->index, sb->name, NULL);
			if (sb->dir[0])
				files_remove_tree(sb->dir);
		} else {
			set_state(sb, ended_well ? STATE_STOPPED : STATE_CRASHED,
				  sb->stop_reason ? sb->stop_reason : REASON_EXIT);
		}
	}
}

/* Everything up to a running VM; returns false after recording a boot
 * failure. */
static bool boot(struct sandbox *sb)
{
	char path[PATH_MAX + 16];
	msb_error err;
	int rc;

	sb->loop = loop_new();
	if (!sb->loop || setup_signals(sb) < 0) {
		boot_failed(sb, "setup", errno, "set up the event loop: %s", strerror(errno));
		return false;
	}

	rc = assets_find(&sb->assets, sb->rec.image[0] ? sb->rec.image : NULL, &err);
	if (rc == 0)
		rc = assets_prepare_initramfs(&sb->assets, &err);
	if (rc < 0) {
		boot_failed(sb, "assets", -rc, "%s", err.message);
		return false;
	}
	if (sb->rec.disk_mib && access(sb->upper_path, F_OK) < 0) {
		rc = upper_create(sb->upper_path, sb->rec.disk_mib, &err);
		if (rc < 0) {
			boot_failed(sb, "setup", -rc, "%s", err.message);
			return false;
		}
		log_info("sandbox", "created upper image %s size_mib=%u", sb->upper_path, sb->rec.disk_mib);
	}

	rc = mounts_deserialize(sb->rec.mounts ? sb->rec.mounts : "", sb->mounts, MOUNTS_MAX, &sb->n_mounts, &err);
	if (rc < 0) {
		boot_failed(sb, "setup", -rc, "%s", err.message);
		return false;
	}
	for (size_t i = 0; i < sb->n_mounts; i++)
		sb->has_shares |= sb->mounts[i].kind != MOUNT_TMPFS;
	if (sb->has_shares) {
		rc = shares_start(sb->dir, sb->mounts, sb->n_mounts, &sb->shares, &err);
		if (rc < 0) {
			boot_failed(sb, "shares", -rc, "%s", err.message);
			return false;
		}
		log_info("shares", "virtiofsd pid=%d serves %zu mounts", (int)sb->shares.pid, sb->n_mounts);
	}

	snprintf(path, sizeof(path), "%s/exec.log", sb->dir);
	sb->exec_log = exec_log_open(path);
	if (!sb->exec_log)
		log_warn("sandbox", "cannot open %s; exec output is not logged", path);

	accel_choose(&sb->assets, &sb->accel);
	log_info("accel", "%s (%s%s)", engine_accel_name(sb->accel.accel), sb->accel.reason,
		 sb->accel.cached ? ", decided earlier this host boot" : "");

	rc = start_vm(sb, &err);
	if (rc < 0) {
		boot_failed(sb, "engine", -rc, "%s", err.message);
		return false;
	}
	sb->boot_timer = loop_add_timer(sb->loop, (uint64_t)sb->boot_timeout_s * 1000, 0, on_boot_timeout, sb);
	return true;
}

int sandbox_main(int argc, char **argv)
{
	struct sandbox sb;
	char log_path[PATH_MAX + 16];
	msb_error err;

	memset(&sb, 0, sizeof(sb));
	sb.listen_fd = -1;
	sb.guest_fd = -1;
	sb.start_ns = monotonic_ns();
	if (parse_options(argc, argv, &sb) < 0)
		return SANDBOX_EXIT_USAGE;
	if (home_check_name(sb.name, &err) < 0) {
		fprintf(stderr, "msb sandbox: %s\n", err.message);
		return SANDBOX_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MSB_LOG") && strcmp(getenv("MSB_LOG"), "debug") == 0)
		log_set_level(LOG_DEBUG);

	if (claim_record(&sb, &err) < 0) {
		char line[700];

		snprintf(line, sizeof(line), "error setup: %s\n", err.message);
		notify_ready_fd(&sb, line);
		index_close(sb.index);
		return SANDBOX_EXIT_BOOT_FAILED;
	}
	/* An ephemeral sandbox belongs to the process that started it and
	 * stops when that process goes. */
	if (sb.rec.ephemeral)
		prctl(PR_SET_PDEATHSIG, SIGTERM);

	if (prepare_dir(&sb, &err) < 0) {
		boot_failed(&sb, "setup", -err.code, "%s", err.message);
		cleanup(&sb);
		index_record_free(&sb.rec);
		index_close(sb.index);
		return sb.exit_status;
	}
	snprintf(log_path, sizeof(log_path), "%s/runtime.log", sb.dir);
	if (log_open(log_path) < 0)
		fprintf(stderr, "msb sandbox: open %s: %s; logging to stderr\n", log_path, strerror(errno));
	log_info("sandbox", "starting name=%s pid=%d cpus=%u memory_mib=%u disk_mib=%u ephemeral=%d", sb.name,
		 (int)getpid(), sb.rec.cpus, sb.rec.memory_mib, sb.rec.disk_mib, sb.rec.ephemeral);

	if (boot(&sb))
		loop_run(sb.loop);

	cleanup(&sb);
	loop_free(sb.loop);
	index_record_free(&sb.rec);
	index_close(sb.index);
	return sb.exit_status;
}
