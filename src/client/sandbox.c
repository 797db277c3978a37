/* Starting and stopping sandboxes: each sandbox is a process of its own
 * (`msb sandbox`), started here and watched through a pipe until its guest
 * is ready. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"
#include "../base/home.h"

#define DEFAULT_RUNTIME "msb"
#define DEFAULT_BOOT_TIMEOUT_S 60
/* The sandbox process reports its own boot timeout; the starter waits a
 * little longer so that the report, not a second timer, decides. */
#define READY_WAIT_MARGIN_S 15

struct msb_sandbox {
	char name[HOME_NAME_MAX + 1];
	char dir[PATH_MAX];
	pid_t pid;
	bool is_child; /* started by this process, so waitpid() applies */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void generate_name(char *out, size_t len)
{
	unsigned char r[4] = { 0 };

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		unsigned v = (unsigned)getpid() ^ (unsigned)now_ms();

		memcpy(r, &v, sizeof(r));
	}
	snprintf(out, len, "sb-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static pid_t read_pid_file(const char *dir)
{
	char path[PATH_MAX + 16], *text;
	pid_t pid = 0;

	snprintf(path, sizeof(path), "%s/sandbox.pid", dir);
	if (files_read_all(path, 64, &text, NULL) == 0) {
		pid = (pid_t)atoi(text);
		free(text);
	}
	return pid;
}

static bool process_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static void exec_runtime(const char *runtime, const msb_sandbox_options *o, const char *name, int ready_fd)
	__attribute__((noreturn));

static void exec_runtime(const char *runtime, const msb_sandbox_options *o, const char *name, int ready_fd)
{
	char cpus[16], memory[16], timeout[16], fd[16];
	const char *argv[20];
	int n = 0, null_fd;

	snprintf(cpus, sizeof(cpus), "%u", o->cpus ? o->cpus : 1);
	snprintf(memory, sizeof(memory), "%u", o->memory_mib ? o->memory_mib : 512);
	snprintf(timeout, sizeof(timeout), "%u", o->boot_timeout_s ? o->boot_timeout_s : DEFAULT_BOOT_TIMEOUT_S);
	snprintf(fd, sizeof(fd), "%d", ready_fd);

	argv[n++] = runtime;
	argv[n++] = "sandbox";
	argv[n++] = "--name";
	argv[n++] = name;
	argv[n++] = "--cpus";
	argv[n++] = cpus;
	argv[n++] = "--memory";
	argv[n++] = memory;
	argv[n++] = "--boot-timeout";
	argv[n++] = timeout;
	argv[n++] = "--ready-fd";
	argv[n++] = fd;
	if (o->image) {
		argv[n++] = "--image";
		argv[n++] = o->image;
	}
	if (o->ephemeral)
		argv[n++] = "--ephemeral";
	argv[n] = NULL;

	/* Out of the caller's session, so its terminal's signals do not
	 * reach the VM; and off its stdio, so that a sandbox that outlives
	 * the caller holds none of its pipes open. */
	setsid();
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd >= 0) {
		dup2(null_fd, 0);
		dup2(null_fd, 1);
		dup2(null_fd, 2);
	}
	execvp(runtime, (char *const *)argv);
	dprintf(ready_fd, "error runtime: execute %s: %s\n", runtime, strerror(errno));
	_exit(127);
}

/* Reads the sandbox process's one-line report: "ready" or "error ...". */
static int wait_ready(msb_sandbox *sb, int fd, unsigned timeout_s, msb_error *err)
{
	char line[1200];
	size_t len = 0;
	int64_t deadline = now_ms() + (int64_t)(timeout_s + READY_WAIT_MARGIN_S) * 1000;

	while (len < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return err_set(err, -ETIMEDOUT, "sandbox %s did not report within %u s; see %s/runtime.log",
				       sb->name, timeout_s + READY_WAIT_MARGIN_S, sb->dir);
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return err_sys(err, -errno, "wait for sandbox %s", sb->name);
		n = read(fd, line + len, sizeof(line) - 1 - len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = 0;
	line[strcspn(line, "\n")] = 0;

	if (strcmp(line, "ready") == 0)
		return 0;
	if (strncmp(line, "error ", 6) == 0)
		return err_set(err, -EIO, "sandbox %s failed to boot: %s (logs in %s)", sb->name, line + 6, sb->dir);
	return err_set(err, -EIO, "sandbox %s exited before its guest was ready; see %s/runtime.log", sb->name,
		       sb->dir);
}

int msb_sandbox_start(const msb_sandbox_options *options, msb_sandbox **out, msb_error *err)
{
	static const msb_sandbox_options defaults;
	const msb_sandbox_options *o = options ? options : &defaults;
	const char *runtime = o->runtime_path;
	msb_sandbox *sb;
	int ready[2], rc;

	if (!runtime)
		runtime = getenv("MSB_RUNTIME");
	if (!runtime || !*runtime)
		runtime = DEFAULT_RUNTIME;

	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return err_set(err, -ENOMEM, "out of memory");
	if (o->name)
		snprintf(sb->name, sizeof(sb->name), "%s", o->name);
	else
		generate_name(sb->name, sizeof(sb->name));
	rc = home_check_name(o->name ? o->name : sb->name, err);
	if (rc == 0)
		rc = home_path(sb->dir, sizeof(sb->dir), "sandboxes/%s", sb->name);
	if (rc == 0 && process_alive(read_pid_file(sb->dir)))
		rc = err_set(err, -EEXIST, "sandbox %s already exists and is running; pick another name", sb->name);
	if (rc < 0) {
		free(sb);
		return rc;
	}

	if (pipe2(ready, O_CLOEXEC) < 0) {
		free(sb);
		return err_sys(err, -errno, "create pipe");
	}
	sb->pid = fork();
	if (sb->pid < 0) {
		rc = err_sys(err, -errno, "start the sandbox process");
		close(ready[0]);
		close(ready[1]);
		free(sb);
		return rc;
	}
	if (sb->pid == 0) {
		/* The write end must survive execve(). */
		fcntl(ready[1], F_SETFD, 0);
		exec_runtime(runtime, o, sb->name, ready[1]);
	}
	sb->is_child = true;
	close(ready[1]);

	rc = wait_ready(sb, ready[0], o->boot_timeout_s ? o->boot_timeout_s : DEFAULT_BOOT_TIMEOUT_S, err);
	close(ready[0]);
	if (rc < 0) {
		kill(sb->pid, SIGTERM);
		waitpid(sb->pid, NULL, 0);
		free(sb);
		return rc;
	}
	*out = sb;
	return 0;
}

const char *msb_sandbox_name(const msb_sandbox *sb)
{
	return sb->name;
}

static bool wait_exit(msb_sandbox *sb, int64_t deadline)
{
	while (now_ms() < deadline) {
		struct timespec step = { 0, 10 * 1000 * 1000 };

		if (sb->is_child) {
			if (waitpid(sb->pid, NULL, WNOHANG) == sb->pid)
				return true;
		} else if (!process_alive(sb->pid)) {
			return true;
		}
		nanosleep(&step, NULL);
	}
	return false;
}

int msb_sandbox_stop(msb_sandbox *sb, unsigned timeout_s, msb_error *err)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	msb_client *c;

	if (sb->pid <= 0)
		return 0;
	if (msb_connect(sb->name, &c, NULL) == 0) {
		msb_request_shutdown(c, NULL);
		msb_disconnect(c);
	} else {
		kill(sb->pid, SIGTERM);
	}
	if (!wait_exit(sb, deadline)) {
		kill(sb->pid, SIGKILL);
		wait_exit(sb, now_ms() + 5000);
		sb->pid = 0;
		return err_set(err, -ETIMEDOUT, "sandbox %s did not stop within %u s and was killed", sb->name,
			       timeout_s);
	}
	sb->pid = 0;
	return 0;
}

int msb_sandbox_remove(msb_sandbox *sb, msb_error *err)
{
	int rc;

	if (process_alive(read_pid_file(sb->dir)))
		return err_set(err, -EBUSY, "sandbox %s is running; stop it first", sb->name);
	rc = files_remove_tree(sb->dir);
	return rc < 0 ? err_sys(err, rc, "remove %s", sb->dir) : 0;
}

void msb_sandbox_free(msb_sandbox *sb)
{
	free(sb);
}
