/* The sandbox process: boot, relay, clock sync, stop. */
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
#include "../base/json.h"
#include "../engine/engine.h"
#include "../guest/assets.h"
#include "../guest/cmdline.h"
#include "../proto/errname.h"
#include "../proto/frame.h"
#include "accel.h"
#include "clock_sync.h"
#include "log.h"
#include "relay.h"

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

struct sandbox_options {
	const char *name;
	const char *image;
	unsigned cpus;
	unsigned memory_mib;
	unsigned boot_timeout_s;
	int ready_fd;
	bool ephemeral;
};

struct sandbox {
	struct sandbox_options opt;
	char dir[PATH_MAX];
	char socket_path[PATH_MAX];
	char console_path[PATH_MAX];
	struct guest_assets assets;
	struct accel_verdict accel;
	struct loop *loop;
	struct relay *relay;
	int guest_fd;
	int listen_fd;
	int signal_fd;
	struct engine_vm vm;
	bool vm_running;
	int vm_status;
	enum sandbox_phase phase;
	const char *stop_reason;
	int exit_status;
	char diag[DIAG_KEEP_BYTES];
	size_t diag_len;
	struct clock_sync clock;
	bool clock_error_logged;
	struct loop_watch *boot_timer, *stop_timer, *clock_timer, *signal_watch, *diag_watch;
	uint64_t start_ns;
};

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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

static int parse_options(int argc, char **argv, struct sandbox_options *o)
{
	static const struct option long_options[] = {
		{ "name", required_argument, NULL, 'n' },   { "image", required_argument, NULL, 'i' },
		{ "cpus", required_argument, NULL, 'c' },   { "memory", required_argument, NULL, 'm' },
		{ "boot-timeout", required_argument, NULL, 't' }, { "ready-fd", required_argument, NULL, 'r' },
		{ "ephemeral", no_argument, NULL, 'e' },    { NULL, 0, NULL, 0 },
	};
	unsigned value;
	int c;

	memset(o, 0, sizeof(*o));
	o->cpus = SANDBOX_DEFAULT_CPUS;
	o->memory_mib = SANDBOX_DEFAULT_MEMORY_MIB;
	o->boot_timeout_s = SANDBOX_DEFAULT_BOOT_TIMEOUT_S;
	o->ready_fd = -1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case 'i':
			o->image = optarg;
			break;
		case 'c':
			if (parse_uint(optarg, "--cpus", 1, SANDBOX_MAX_CPUS, &o->cpus) < 0)
				return -EINVAL;
			break;
		case 'm':
			if (parse_uint(optarg, "--memory", SANDBOX_MIN_MEMORY_MIB, 1024 * 1024, &o->memory_mib) < 0)
				return -EINVAL;
			break;
		case 't':
			if (parse_uint(optarg, "--boot-timeout", 1, 3600, &o->boot_timeout_s) < 0)
				return -EINVAL;
			break;
		case 'r':
			if (parse_uint(optarg, "--ready-fd", 3, 65535, &value) < 0)
				return -EINVAL;
			o->ready_fd = (int)value;
			break;
		case 'e':
			o->ephemeral = true;
			break;
		default:
			return -EINVAL;
		}
	}
	if (!o->name) {
		fprintf(stderr, "msb sandbox: --name is required\n");
		return -EINVAL;
	}
	return 0;
}

/* ---- Reporting to the starter ---- */

static void notify_ready_fd(struct sandbox *sb, const char *line)
{
	if (sb->opt.ready_fd < 0)
		return;
	if (files_write_full(sb->opt.ready_fd, line, strlen(line)) < 0)
		log_warn("sandbox", "could not notify the starter: %s", strerror(errno));
	close(sb->opt.ready_fd);
	sb->opt.ready_fd = -1;
}

/* Finds the most telling line of kernel.log: a panic, else the agent's
 * last error. */
static bool kernel_log_reason(const char *path, char *out, size_t out_len, const char **stage)
{
	char *log, *line, *best = NULL;
	bool found = false;

	if (files_read_all(path, 64 * 1024 * 1024, &log, NULL) < 0)
		return false;
	for (line = strtok(log, "\r\n"); line; line = strtok(NULL, "\r\n")) {
		if (strstr(line, "Kernel panic")) {
			best = line;
			*stage = "kernel";
			break;
		}
		if (strstr(line, "msb-agentd:")) {
			best = line;
			*stage = "agent";
		}
	}
	if (best) {
		snprintf(out, out_len, "%s", best);
		found = true;
	}
	free(log);
	return found;
}

static void write_boot_error(struct sandbox *sb, const char *stage, int err, const char *message)
{
	char path[PATH_MAX + 32], now[64];
	struct buf json;
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_init(&json);
	json_append_raw(&json, "{\"stage\": ");
	json_append_cstr(&json, stage);
	json_append_raw(&json, ", \"errno\": ");
	if (err) {
		char num[16];

		snprintf(num, sizeof(num), "%d", err);
		json_append_raw(&json, num);
		json_append_raw(&json, ", \"errno_name\": ");
		json_append_cstr(&json, errno_name(err) ? errno_name(err) : "");
	} else {
		json_append_raw(&json, "null");
	}
	json_append_raw(&json, ", \"message\": ");
	json_append_cstr(&json, message);
	json_append_raw(&json, ", \"time\": ");
	json_append_cstr(&json, now);
	json_append_raw(&json, ", \"kernel_log\": ");
	json_append_cstr(&json, sb->console_path);
	json_append_raw(&json, "}\n");

	snprintf(path, sizeof(path), "%s/boot-error.json", sb->dir);
	if (files_write_atomic(path, buf_peek(&json), buf_pending(&json), 0644) < 0)
		log_error("sandbox", "write %s: %s", path, strerror(errno));
	buf_free(&json);
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
	write_boot_error(sb, stage, err, message);
	snprintf(line, sizeof(line), "error %s: %s\n", stage, message);
	notify_ready_fd(sb, line);
	sb->exit_status = SANDBOX_EXIT_BOOT_FAILED;
	sb->stop_reason = "boot failure";
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

	log_warn("sandbox", "the guest did not power off within %d ms; stopping the VM", SANDBOX_STOP_TIMEOUT_MS);
	loop_remove(loop, sb->stop_timer);
	sb->stop_timer = NULL;
	vm_kill(sb);
}

static void arm_stop_timer(struct sandbox *sb, uint64_t ms)
{
	if (!sb->stop_timer)
		sb->stop_timer = loop_add_timer(sb->loop, ms, 0, on_stop_timeout, sb);
}

static void request_stop(struct sandbox *sb, const char *reason)
{
	struct msg m;

	if (sb->phase == PHASE_STOPPING || sb->phase == PHASE_DONE)
		return;
	log_info("sandbox", "stopping: %s", reason);
	sb->stop_reason = reason;
	if (sb->phase == PHASE_BOOTING) {
		sb->phase = PHASE_STOPPING;
		vm_kill(sb);
		return;
	}
	sb->phase = PHASE_STOPPING;
	memset(&m, 0, sizeof(m));
	m.type = MSG_SHUTDOWN;
	if (relay_send_msg(sb->relay, &m) < 0)
		vm_kill(sb);
	arm_stop_timer(sb, SANDBOX_STOP_TIMEOUT_MS);
}

/* ---- Guest handshake ---- */

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

static void guest_ready(struct sandbox *sb, const uint8_t *frame, size_t len, const struct msg *m)
{
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
		request_stop(sb, "boot failure");
		return;
	}

	loop_remove(sb->loop, sb->boot_timer);
	sb->boot_timer = NULL;
	sb->phase = PHASE_RUNNING;
	log_info("sandbox", "ready in %llu ms (guest: agent start %llu ms, init done %llu ms, ready %llu ms) agent=%.*s",
		 (unsigned long long)((monotonic_ns() - sb->start_ns) / 1000000),
		 (unsigned long long)(m->u.ready.boot_time_ns / 1000000),
		 (unsigned long long)(m->u.ready.init_time_ns / 1000000),
		 (unsigned long long)(m->u.ready.ready_time_ns / 1000000), (int)m->u.ready.agent_version.len,
		 m->u.ready.agent_version.ptr ? (const char *)m->u.ready.agent_version.ptr : "");

	sb->clock_timer = loop_add_timer(sb->loop, 0, CLOCK_SYNC_POLL_MS, on_clock_timer, sb);
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
	if (sb->phase == PHASE_RUNNING) {
		sb->phase = PHASE_STOPPING;
		sb->stop_reason = "crash";
	}
	/* QEMU normally exits right after; make sure it does. */
	arm_stop_timer(sb, GUEST_EXIT_GRACE_MS);
}

static void on_client_shutdown(void *data)
{
	struct sandbox *sb = data;

	if (sb->phase == PHASE_RUNNING) {
		sb->phase = PHASE_STOPPING;
		sb->stop_reason = "stop";
		arm_stop_timer(sb, SANDBOX_STOP_TIMEOUT_MS);
	}
}

static const struct relay_hooks sandbox_relay_hooks = {
	.on_guest_control = on_guest_control,
	.on_guest_closed = on_guest_closed,
	.on_client_shutdown = on_client_shutdown,
};

/* ---- Engine events ---- */

static void on_boot_timeout(struct loop *loop, void *data)
{
	struct sandbox *sb = data;
	char reason[512] = "";
	const char *stage = "timeout";

	loop_remove(loop, sb->boot_timer);
	sb->boot_timer = NULL;
	if (kernel_log_reason(sb->console_path, reason, sizeof(reason), &stage))
		boot_failed(sb, "timeout", ETIMEDOUT, "the guest did not become ready within %u s; kernel log: %s",
			    sb->opt.boot_timeout_s, reason);
	else
		boot_failed(sb, "timeout", ETIMEDOUT,
			    "the guest did not become ready within %u s (raise it with --boot-timeout)",
			    sb->opt.boot_timeout_s);
	request_stop(sb, "boot failure");
}

static void on_diag(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct sandbox *sb = data;
	char chunk[1024];
	ssize_t n = read(fd, chunk, sizeof(chunk) - 1);

	if (n <= 0) {
		loop_remove(loop, sb->diag_watch);
		sb->diag_watch = NULL;
		return;
	}
	chunk[n] = 0;
	for (char *line = strtok(chunk, "\n"); line; line = strtok(NULL, "\n"))
		log_warn("engine", "qemu: %s", line);
	if (sb->diag_len < sizeof(sb->diag) - 1) {
		size_t room = sizeof(sb->diag) - 1 - sb->diag_len;
		size_t take = (size_t)n < room ? (size_t)n : room;

		memcpy(sb->diag + sb->diag_len, chunk, take);
		sb->diag_len += take;
		sb->diag[sb->diag_len] = 0;
	}
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

	/* Collect what QEMU printed before it went. */
	if (sb->diag_watch)
		on_diag(sb->loop, sb->vm.diag_fd, 0, sb);
	describe_vm_exit(sb->vm_status, how, sizeof(how));
	log_info("engine", "qemu pid=%d %s", (int)sb->vm.pid, how);

	switch (sb->phase) {
	case PHASE_BOOTING:
		if (sb->diag_len > 0) {
			sb->diag[strcspn(sb->diag, "\n")] = 0;
			boot_failed(sb, "engine", 0, "QEMU %s: %s", how, sb->diag);
		} else if (kernel_log_reason(sb->console_path, reason, sizeof(reason), &stage)) {
			boot_failed(sb, stage, 0, "the guest stopped before it was ready: %s", reason);
		} else {
			boot_failed(sb, "kernel", 0, "the guest stopped before it was ready (QEMU %s); see %s", how,
				    sb->console_path);
		}
		break;
	case PHASE_RUNNING:
		sb->stop_reason = "crash";
		sb->exit_status = SANDBOX_EXIT_CRASHED;
		log_error("sandbox", "the VM stopped unexpectedly (QEMU %s); kernel log kept in %s", how,
			  sb->console_path);
		break;
	case PHASE_STOPPING:
		if (sb->stop_reason && strcmp(sb->stop_reason, "crash") == 0)
			sb->exit_status = SANDBOX_EXIT_CRASHED;
		break;
	case PHASE_DONE:
		break;
	}
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

			if (sb->vm_running && waitpid(sb->vm.pid, &status, WNOHANG) == sb->vm.pid) {
				sb->vm_running = false;
				sb->vm_status = status;
				vm_exited(sb);
				return;
			}
		} else {
			log_info("sandbox", "received signal %d", (int)si.ssi_signo);
			request_stop(sb, "stop");
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
	struct engine_config c;
	char cmdline[2048];
	int sv[2], rc;

	struct cmdline_params params = {
		.hostname = sb->opt.name,
		.tsc_khz = sb->accel.tsc_khz,
		.tcg = sb->accel.accel == ENGINE_ACCEL_TCG,
		.verbose = getenv("MSB_KERNEL_VERBOSE") != NULL,
	};

	rc = cmdline_build(cmdline, sizeof(cmdline), &params);
	if (rc < 0)
		return err_set(err, rc, "kernel command line too long");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_sys(err, -errno, "create the agent channel");

	memset(&c, 0, sizeof(c));
	c.name = sb->opt.name;
	c.kernel = sb->assets.kernel;
	c.initramfs = sb->assets.initramfs;
	c.cmdline = cmdline;
	c.root_image = sb->assets.root_image;
	c.cpus = sb->opt.cpus;
	c.memory_mib = sb->opt.memory_mib;
	c.accel = sb->accel.accel;
	c.agent_fd = sv[1];
	c.console_log = sb->console_path;

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
	char pid_path[PATH_MAX + 16], pid_text[32], stale[PATH_MAX + 32];
	int rc, n;

	rc = home_path(sb->dir, sizeof(sb->dir), "sandboxes/%s", sb->opt.name);
	if (rc == 0)
		rc = files_mkdir_p(sb->dir, 0700);
	if (rc < 0)
		return err_sys(err, rc, "create sandbox directory %s", sb->dir);
	snprintf(sb->socket_path, sizeof(sb->socket_path), "%s/agent.sock", sb->dir);
	snprintf(sb->console_path, sizeof(sb->console_path), "%s/kernel.log", sb->dir);
	snprintf(stale, sizeof(stale), "%s/boot-error.json", sb->dir);
	unlink(stale);
	unlink(sb->console_path);

	snprintf(pid_path, sizeof(pid_path), "%s/sandbox.pid", sb->dir);
	n = snprintf(pid_text, sizeof(pid_text), "%d\n", (int)getpid());
	rc = files_write_atomic(pid_path, pid_text, (size_t)n, 0644);
	if (rc < 0)
		return err_sys(err, rc, "write %s", pid_path);
	return 0;
}

static void cleanup(struct sandbox *sb)
{
	char path[PATH_MAX + 16];
	bool keep;

	if (sb->vm_running) {
		engine_qemu.kill(&sb->vm);
		waitpid(sb->vm.pid, NULL, 0);
		sb->vm_running = false;
	}
	relay_free(sb->relay);
	if (sb->listen_fd >= 0)
		close(sb->listen_fd);
	unlink(sb->socket_path);
	snprintf(path, sizeof(path), "%s/sandbox.pid", sb->dir);
	unlink(path);

	log_info("sandbox", "stopped reason=%s status=%d", sb->stop_reason ? sb->stop_reason : "exit",
		 sb->exit_status);
	log_close();

	/* An ephemeral sandbox leaves nothing behind, unless something went
	 * wrong: then its logs are what the user needs. */
	keep = sb->exit_status != SANDBOX_EXIT_OK;
	if (sb->opt.ephemeral && !keep && sb->dir[0])
		files_remove_tree(sb->dir);
}

int sandbox_main(int argc, char **argv)
{
	struct sandbox sb;
	char log_path[PATH_MAX + 16];
	msb_error err;
	int rc;

	memset(&sb, 0, sizeof(sb));
	sb.listen_fd = -1;
	sb.guest_fd = -1;
	sb.start_ns = monotonic_ns();
	if (parse_options(argc, argv, &sb.opt) < 0)
		return SANDBOX_EXIT_USAGE;
	if (home_check_name(sb.opt.name, &err) < 0) {
		fprintf(stderr, "msb sandbox: %s\n", err.message);
		return SANDBOX_EXIT_USAGE;
	}
	if (sb.opt.ephemeral)
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MSB_LOG") && strcmp(getenv("MSB_LOG"), "debug") == 0)
		log_set_level(LOG_DEBUG);

	if (prepare_dir(&sb, &err) < 0) {
		fprintf(stderr, "msb sandbox: %s\n", err.message);
		notify_ready_fd(&sb, "error setup: could not create the sandbox directory\n");
		return SANDBOX_EXIT_BOOT_FAILED;
	}
	snprintf(log_path, sizeof(log_path), "%s/runtime.log", sb.dir);
	if (log_open(log_path) < 0)
		fprintf(stderr, "msb sandbox: open %s: %s; logging to stderr\n", log_path, strerror(errno));
	log_info("sandbox", "starting name=%s pid=%d cpus=%u memory_mib=%u", sb.opt.name, (int)getpid(), sb.opt.cpus,
		 sb.opt.memory_mib);

	sb.loop = loop_new();
	if (!sb.loop || setup_signals(&sb) < 0) {
		boot_failed(&sb, "setup", errno, "set up the event loop: %s", strerror(errno));
		cleanup(&sb);
		return sb.exit_status;
	}

	rc = assets_find(&sb.assets, sb.opt.image, &err);
	if (rc == 0)
		rc = assets_prepare_initramfs(&sb.assets, &err);
	if (rc < 0) {
		boot_failed(&sb, "assets", -rc, "%s", err.message);
		cleanup(&sb);
		return sb.exit_status;
	}

	accel_choose(&sb.assets, &sb.accel);
	log_info("accel", "%s (%s%s)", engine_accel_name(sb.accel.accel), sb.accel.reason,
		 sb.accel.cached ? ", decided earlier this host boot" : "");

	rc = start_vm(&sb, &err);
	if (rc < 0) {
		boot_failed(&sb, "engine", -rc, "%s", err.message);
		cleanup(&sb);
		return sb.exit_status;
	}
	sb.boot_timer = loop_add_timer(sb.loop, (uint64_t)sb.opt.boot_timeout_s * 1000, 0, on_boot_timeout, &sb);

	loop_run(sb.loop);

	cleanup(&sb);
	loop_free(sb.loop);
	return sb.exit_status;
}
