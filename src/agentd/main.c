/* msb-agentd entry point, event loop and the channel to the host. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "../proto/frame.h"

#define PORT_NAME "agent"
#define DEFAULT_HOSTNAME "msb"
/* Printed on the console by a probe boot (MSB_PROBE=1), which powers off
 * right after; the host looks for it to tell that a guest reached init. */
#define PROBE_MARKER "msb-agentd: probe ok"
#define READ_CHUNK_BYTES (64 * 1024)
#define EPOLL_BATCH 64

static bool log_to_kmsg;
static int kmsg_fd = -1;

static void vlog(int level, const char *fmt, va_list ap)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "<%d>msb-agentd: ", level);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n >= (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';

	if (log_to_kmsg && kmsg_fd >= 0) {
		if (write(kmsg_fd, line, (size_t)n) >= 0)
			return;
	}
	/* Skip the "<level>" prefix, which only the kernel log reads. */
	if (write(STDERR_FILENO, strchr(line, '>') + 1, (size_t)n - (size_t)(strchr(line, '>') + 1 - line)) < 0)
		return;
}

void agent_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(6, fmt, ap);
	va_end(ap);
}

void agent_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(3, fmt, ap);
	va_end(ap);
}

static uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int agent_watch(struct agent *a, int fd, struct watch *w, int events)
{
	struct epoll_event ev = { .events = (uint32_t)events, .data.ptr = w };

	if (events < 0)
		return epoll_ctl(a->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
	if (epoll_ctl(a->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	return epoll_ctl(a->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

static void update_port_watch(struct agent *a)
{
	bool want_out = buf_pending(&a->out) > 0;

	if (want_out != a->out_watched) {
		agent_watch(a, a->port_fd, &a->w_port, EPOLLIN | (want_out ? EPOLLOUT : 0));
		a->out_watched = want_out;
	}
	if (!a->output_paused && buf_pending(&a->out) > AGENT_OUT_HIGH_BYTES)
		exec_set_output_paused(a, true);
	else if (a->output_paused && buf_pending(&a->out) < AGENT_OUT_LOW_BYTES)
		exec_set_output_paused(a, false);
}

static void flush_out(struct agent *a)
{
	while (buf_pending(&a->out) > 0) {
		ssize_t n = write(a->port_fd, buf_peek(&a->out), buf_pending(&a->out));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				agent_error("write to host: %s", strerror(errno));
			break;
		}
		buf_consume(&a->out, (size_t)n);
	}
	buf_shrink(&a->out);
	update_port_watch(a);
}

void agent_flush(struct agent *a)
{
	flush_out(a);
}

int agent_send(struct agent *a, const struct msg *m)
{
	int rc = msg_encode(&a->out, m);

	if (rc < 0)
		agent_error("encode %s id=%u: %s", msg_type_name(m->type), m->id, strerror(-rc));
	flush_out(a);
	return rc;
}

void agent_send_data(struct agent *a, enum msg_type type, uint32_t id, const void *data, size_t len)
{
	int rc = msg_encode_data(&a->out, type, id, data, len);

	if (rc < 0)
		agent_error("encode %s id=%u: %s", msg_type_name(type), id, strerror(-rc));
	flush_out(a);
}

/* Writes all of the queue, waiting as long as it takes; used only during
 * the boot handshake and at shutdown. */
static void flush_out_blocking(struct agent *a)
{
	int flags = fcntl(a->port_fd, F_GETFL);

	fcntl(a->port_fd, F_SETFL, flags & ~O_NONBLOCK);
	flush_out(a);
	fcntl(a->port_fd, F_SETFL, flags);
}

/* core.error exists from generation 5; at the generation this agent
 * speaks, an unknown or broken message is ignored and the log is its only
 * trace. */
static void report_bad_message(uint32_t id, const char *kind, const char *message, struct span type_name)
{
	agent_error("%s: %s (type %.*s, id %u)", kind, message, (int)type_name.len,
		    type_name.ptr ? (const char *)type_name.ptr : "?", id);
}

static void shutdown_now(struct agent *a)
{
	agent_info("shutdown requested");
	a->shutting_down = true;
	exec_kill_all(a);
	flush_out_blocking(a);
	if (a->pid1) {
		kill(-1, SIGKILL);
		init_power_off();
	}
	exit(0);
}

static void dispatch(struct agent *a, const struct msg *m)
{
	switch (m->type) {
	case MSG_EXEC_REQUEST:
		exec_handle_request(a, m);
		break;
	case MSG_EXEC_STDIN:
		exec_handle_stdin(a, m);
		break;
	case MSG_EXEC_RESIZE:
		exec_handle_resize(a, m);
		break;
	case MSG_EXEC_SIGNAL:
		exec_handle_signal(a, m);
		break;
	case MSG_CLOCK_SYNC:
		clock_handle_sync(m);
		break;
	case MSG_CLIENT_DISCONNECTED:
		exec_detach_range(a, m->u.client_disconnected.id_start, m->u.client_disconnected.id_end_exclusive);
		fs_detach_range(a, m->u.client_disconnected.id_start, m->u.client_disconnected.id_end_exclusive);
		break;
	case MSG_FS_REQUEST:
		fs_handle_request(a, m);
		break;
	case MSG_FS_DATA:
		fs_handle_data(a, m);
		break;
	case MSG_SHUTDOWN:
		shutdown_now(a);
		break;
	case MSG_FLOW_PAUSE:
	case MSG_FLOW_RESUME:
		exec_set_flow(a, m->u.client_disconnected.id_start, m->u.client_disconnected.id_end_exclusive,
			      m->type == MSG_FLOW_PAUSE);
		break;
	case MSG_INIT_ACK:
		break;
	default:
		report_bad_message(m->id, "unsupported_message_type", "message type not served by this agent",
				   m->type_name);
		break;
	}
}

/* Decodes and dispatches every whole frame in the input buffer. A frame
 * with a bad length cannot be skipped (its end is unknown), so the stream
 * is beyond repair; the host drops such a connection, and so does the
 * agent by discarding everything buffered. A well-framed message with a bad
 * body is reported and skipped. */
static void process_input(struct agent *a)
{
	for (;;) {
		struct frame_header h;
		struct msg m;
		long total = frame_scan(buf_peek(&a->in), buf_pending(&a->in), &h);
		int rc;

		if (total == 0)
			break;
		if (total < 0) {
			agent_error("unusable frame from the host (%s); discarding %zu buffered bytes",
				    strerror((int)-total), buf_pending(&a->in));
			buf_reset(&a->in);
			break;
		}
		rc = msg_decode(buf_peek(&a->in), (size_t)total, &m);
		if (rc < 0)
			report_bad_message(h.id, rc == -EBADMSG ? "malformed_message" : "invalid_payload",
					   strerror(-rc), m.type_name);
		else
			dispatch(a, &m);
		msg_free(&m);
		buf_consume(&a->in, (size_t)total);
	}
	buf_shrink(&a->in);
}

static int read_port(struct agent *a)
{
	for (;;) {
		ssize_t n;

		if (buf_reserve(&a->in, READ_CHUNK_BYTES) < 0)
			return -ENOMEM;
		n = read(a->port_fd, a->in.data + a->in.len, READ_CHUNK_BYTES);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		if (n == 0)
			return -EPIPE;
		a->in.len += (size_t)n;
		process_input(a);
	}
}

/* Blocks until the next whole frame from the host; used before the event
 * loop runs, for the boot handshake. */
static int read_frame_blocking(struct agent *a, struct msg *m)
{
	for (;;) {
		struct frame_header h;
		long total = frame_scan(buf_peek(&a->in), buf_pending(&a->in), &h);
		ssize_t n;

		if (total < 0)
			return (int)total;
		if (total > 0) {
			int rc = msg_decode(buf_peek(&a->in), (size_t)total, m);

			buf_consume(&a->in, (size_t)total);
			return rc;
		}
		if (buf_reserve(&a->in, READ_CHUNK_BYTES) < 0)
			return -ENOMEM;
		n = read(a->port_fd, a->in.data + a->in.len, READ_CHUNK_BYTES);
		if (n < 0 && errno == EAGAIN) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EPIPE : -errno;
		a->in.len += (size_t)n;
	}
}

static int handshake(struct agent *a, uint64_t boot_ns, uint64_t init_ns)
{
	struct msg m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.type = MSG_INIT_RESOLVED;
	m.u.init_resolved.uid = a->default_uid;
	m.u.init_resolved.gid = a->default_gid;
	agent_send(a, &m);
	flush_out_blocking(a);

	/* Frames other than the ack (an early clock sync) are served as usual. */
	for (;;) {
		rc = read_frame_blocking(a, &m);
		if (rc < 0) {
			agent_error("read init ack from the host: %s", strerror(-rc));
			return rc;
		}
		if (m.type == MSG_INIT_ACK)
			break;
		dispatch(a, &m);
		msg_free(&m);
	}

	memset(&m, 0, sizeof(m));
	m.type = MSG_READY;
	m.u.ready.boot_time_ns = boot_ns;
	m.u.ready.init_time_ns = init_ns;
	m.u.ready.ready_time_ns = boottime_ns();
	m.u.ready.agent_version = span_cstr(AGENT_VERSION);
	agent_send(a, &m);
	flush_out_blocking(a);
	return 0;
}

static int setup_loop(struct agent *a)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	a->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	a->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (a->signal_fd < 0 || a->epoll_fd < 0) {
		agent_error("create event loop: %s", strerror(errno));
		return -errno;
	}
	a->w_port.kind = WATCH_PORT;
	a->w_signal.kind = WATCH_SIGNAL;
	if (agent_watch(a, a->signal_fd, &a->w_signal, EPOLLIN) < 0 ||
	    agent_watch(a, a->port_fd, &a->w_port, EPOLLIN) < 0) {
		agent_error("watch the agent port: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void drain_signals(struct agent *a)
{
	struct signalfd_siginfo si;

	while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si))
		;
	exec_reap_children(a);
}

static void run_loop(struct agent *a)
{
	struct epoll_event events[EPOLL_BATCH];

	for (;;) {
		/* Pending file reads make the loop poll instead of sleep. */
		int n = epoll_wait(a->epoll_fd, events, EPOLL_BATCH, fs_pending_work(a) ? 0 : -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			agent_error("epoll_wait: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = events[i].data.ptr;

			switch (w->kind) {
			case WATCH_PORT:
				if (events[i].events & EPOLLOUT)
					flush_out(a);
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
					int rc = read_port(a);

					if (rc == -EPIPE && !a->pid1)
						return; /* test mode: the host went away */
					if (rc < 0 && rc != -EPIPE)
						agent_error("read from host: %s", strerror(-rc));
				}
				break;
			case WATCH_SIGNAL:
				drain_signals(a);
				break;
			default:
				exec_handle_event(a, w, events[i].events);
				break;
			}
		}
		exec_free_finished(a);
		fs_pump(a);
	}
}

/* Boots the guest as PID 1; returns the agent port or a negative errno. */
static int boot_as_pid1(uint64_t *init_ns)
{
	const char *root = getenv("MSB_BLOCK_ROOT");
	const char *hostname = getenv("MSB_HOSTNAME");
	const char *shares = getenv("MSB_SHARES");
	const char *tmpfs = getenv("MSB_TMPFS");
	const char *upper_spec;
	int rc;

	rc = init_early_mounts();
	kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	log_to_kmsg = true;
	if (rc < 0)
		return rc;

	if (getenv("MSB_PROBE")) {
		int console = open("/dev/console", O_WRONLY | O_CLOEXEC);

		if (console >= 0 && write(console, PROBE_MARKER "\n", sizeof(PROBE_MARKER)) < 0)
			agent_error("write probe marker: %s", strerror(errno));
		init_power_off();
	}

	rc = init_load_modules("base");
	if (rc < 0)
		return rc;
	if (!root) {
		agent_error("MSB_BLOCK_ROOT is not set; the host passes it on the kernel command line");
		return -EINVAL;
	}
	upper_spec = strstr(root, "upper_fstype=ext4");
	if ((upper_spec || strstr(root, "kind=oci-erofs")) && (rc = init_load_modules("ext4")) < 0)
		return rc;
	/* Modules live in the initramfs, which is out of reach once the root
	 * moved; load what the shares need now. */
	if (shares && *shares && (rc = init_load_modules("virtiofs")) < 0)
		return rc;
	rc = init_mount_root(root);
	if (rc < 0)
		return rc;
	*init_ns = boottime_ns();
	rc = init_finish_root(hostname && *hostname ? hostname : DEFAULT_HOSTNAME);
	if (rc == 0 && shares && *shares)
		rc = init_mount_shares(shares);
	if (rc == 0 && tmpfs && *tmpfs)
		rc = init_mount_tmpfs(tmpfs);
	if (rc < 0)
		return rc;
	return init_open_port(PORT_NAME);
}

/* Descriptors the agent may hold: 128 clients with 1024 handles each, the
 * jobs that duplicate them, and the sessions' pipes. Processes get the
 * usual limits back (see exec.c). */
#define AGENT_NOFILE 262144

static void set_agent_limits(void)
{
	struct rlimit nofile = { AGENT_NOFILE, AGENT_NOFILE };

	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		agent_error("raise the open file limit to %d: %s", AGENT_NOFILE, strerror(errno));
	/* Files the agent creates for the host get exactly the modes asked
	 * for; processes get the usual umask back. */
	umask(0);
}

int main(void)
{
	struct agent a;
	uint64_t boot_ns = boottime_ns(), init_ns = 0;
	const char *fd_env = getenv("MSB_AGENT_FD");

	memset(&a, 0, sizeof(a));
	a.pid1 = getpid() == 1;
	exec_save_default_limits();
	set_agent_limits();
	buf_init(&a.in);
	buf_init(&a.out);

	if (a.pid1) {
		a.port_fd = boot_as_pid1(&init_ns);
		if (a.port_fd < 0) {
			agent_error("boot failed: %s; powering off", strerror(-a.port_fd));
			init_power_off();
		}
	} else if (fd_env) {
		a.port_fd = atoi(fd_env);
		fcntl(a.port_fd, F_SETFL, fcntl(a.port_fd, F_GETFL) | O_NONBLOCK);
		fcntl(a.port_fd, F_SETFD, FD_CLOEXEC);
		init_ns = boottime_ns();
	} else {
		fprintf(stderr, "msb-agentd: runs as PID 1 of a guest, or with MSB_AGENT_FD=N in tests\n");
		return 2;
	}

	if (setup_loop(&a) < 0 || handshake(&a, boot_ns, init_ns) < 0) {
		if (a.pid1)
			init_power_off();
		return 1;
	}
	agent_info("ready in %llu ms", (unsigned long long)((boottime_ns() - boot_ns) / 1000000));
	run_loop(&a);
	return 0;
}
