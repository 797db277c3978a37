/* Sandbox lifecycle: each sandbox is a process of its own (`msb sandbox`),
 * started here and watched through a pipe until its guest is ready. The
 * index ($MSB_HOME/index.db) records every sandbox and its state. */
#include "client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"
#include "../base/home.h"
#include "../base/index.h"
#include "../base/monotonic.h"
#include "../base/mounts.h"

#define DEFAULT_RUNTIME "msb"
#define DEFAULT_BOOT_TIMEOUT_S 60
#define DEFAULT_CPUS 1
#define DEFAULT_MEMORY_MIB 512
#define DEFAULT_DISK_MIB 4096
/* The sandbox process reports its own boot timeout; the starter waits a
 * little longer so that the report, not a second timer, decides. */
#define READY_WAIT_MARGIN_S 15
/* After a hard stop request, how long the sandbox process gets to record
 * its end before it is killed outright. */
#define HARD_STOP_WAIT_MS 5000

struct msb_sandbox {
	char name[HOME_NAME_MAX + 1];
	char dir[PATH_MAX];
	pid_t child; /* a direct child of this process (ephemeral), else 0 */
	const char *runtime;
};

static const char *runtime_override;
static volatile sig_atomic_t cancel_requested;

void msb_cancel(void)
{
	cancel_requested = 1;
}

void msb_set_runtime_path(const char *path)
{
	runtime_override = path;
}

static const char *runtime_path(const char *given)
{
	const char *env = getenv("MSB_RUNTIME");

	if (given && *given)
		return given;
	if (runtime_override && *runtime_override)
		return runtime_override;
	return env && *env ? env : DEFAULT_RUNTIME;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void generate_name(char *out, size_t len)
{
	unsigned char r[4] = { 0 };

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		unsigned v = (unsigned)getpid() ^ (unsigned)monotonic_ms();

		memcpy(r, &v, sizeof(r));
	}
	snprintf(out, len, "sb-%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static msb_sandbox *handle_new(const char *name, const char *runtime)
{
	msb_sandbox *sb = calloc(1, sizeof(*sb));

	if (!sb)
		return NULL;
	snprintf(sb->name, sizeof(sb->name), "%s", name);
	home_path(sb->dir, sizeof(sb->dir), "sandboxes/%s", name);
	sb->runtime = runtime;
	return sb;
}

/* ---- Starting the sandbox process ---- */

static void exec_runtime(const char *runtime, const char *name, unsigned boot_timeout_s, int ready_fd)
	__attribute__((noreturn));

static void exec_runtime(const char *runtime, const char *name, unsigned boot_timeout_s, int ready_fd)
{
	char timeout[16], fd[16];
	int null_fd;

	snprintf(timeout, sizeof(timeout), "%u", boot_timeout_s);
	snprintf(fd, sizeof(fd), "%d", ready_fd);
	/* Out of the caller's session, so its terminal's signals do not
	 * reach the VM; and off its stdio, so that a sandbox that outlives
	 * the caller keeps none of its pipes open. */
	setsid();
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd >= 0) {
		dup2(null_fd, 0);
		dup2(null_fd, 1);
		dup2(null_fd, 2);
	}
	fcntl(ready_fd, F_SETFD, 0);
	execlp(runtime, runtime, "sandbox", "--name", name, "--boot-timeout", timeout, "--ready-fd", fd,
	       (char *)NULL);
	dprintf(ready_fd, "error runtime: execute %s: %s\n", runtime, strerror(errno));
	_exit(127);
}

/* Reads the sandbox process's one-line report: "ready" or "error ...". */
static int wait_ready(msb_sandbox *sb, int fd, unsigned timeout_s, msb_error *err)
{
	char line[1200];
	size_t len = 0;
	int64_t deadline = monotonic_ms() + (int64_t)(timeout_s + READY_WAIT_MARGIN_S) * 1000;

	while (len < sizeof(line) - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - monotonic_ms();
		ssize_t n;

		if (cancel_requested)
			return err_set(err, -ECANCELED, "interrupted while sandbox %s was booting", sb->name);
		if (left <= 0)
			return err_set(err, -ETIMEDOUT, "sandbox %s did not report within %u s; see %s/runtime.log",
				       sb->name, timeout_s + READY_WAIT_MARGIN_S, sb->dir);
		if (poll(&p, 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			return err_sys(err, -errno, "wait for sandbox %s", sb->name);
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
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

/* Starts the sandbox process for a row in state "creating" and waits for
 * its report. An ephemeral sandbox stays this process's child; any other
 * is detached (double fork), so no process has to reap it. */
static int spawn(msb_sandbox *sb, bool ephemeral, unsigned boot_timeout_s, msb_error *err)
{
	int ready[2], rc, status;
	pid_t pid;

	if (pipe2(ready, O_CLOEXEC) < 0)
		return err_sys(err, -errno, "create pipe");
	pid = fork();
	if (pid < 0) {
		rc = err_sys(err, -errno, "start the sandbox process");
		close(ready[0]);
		close(ready[1]);
		return rc;
	}
	if (pid == 0) {
		if (!ephemeral) {
			pid_t grandchild = fork();

			if (grandchild != 0)
				_exit(grandchild < 0 ? 1 : 0);
		}
		exec_runtime(sb->runtime, sb->name, boot_timeout_s, ready[1]);
	}
	close(ready[1]);
	if (ephemeral)
		sb->child = pid;
	else
		waitpid(pid, &status, 0);

	rc = wait_ready(sb, ready[0], boot_timeout_s, err);
	close(ready[0]);
	if (rc < 0 && sb->child > 0) {
		kill(sb->child, SIGTERM);
		waitpid(sb->child, NULL, 0);
		sb->child = 0;
	}
	return rc;
}

/* Packs NULL-terminated "KEY=VALUE" entries into NUL-separated bytes. */
static int pack_env(const char *const *env, char **out, size_t *out_len, msb_error *err)
{
	size_t len = 0;
	char *packed, *p;

	for (const char *const *e = env; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		if (!eq || eq == *e)
			return err_set(err, -EINVAL, "invalid environment entry \"%.60s\": expected KEY=VALUE", *e);
		len += strlen(*e) + 1;
	}
	packed = malloc(len ? len : 1);
	if (!packed)
		return err_set(err, -ENOMEM, "out of memory");
	p = packed;
	for (const char *const *e = env; e && *e; e++) {
		size_t n = strlen(*e) + 1;

		memcpy(p, *e, n);
		p += n;
	}
	*out = packed;
	*out_len = len;
	return 0;
}

/* After a failed start: a row that no sandbox process claimed (the runtime
 * could not even be executed) would stay "creating" for ever; an
 * ephemeral one goes away, any other is marked as a boot failure. */
static void abandon_unclaimed(const char *name, bool ephemeral)
{
	struct sandbox_record rec;
	struct index *idx;

	if (index_open(&idx, NULL) < 0)
		return;
	if (index_get(idx, name, &rec, NULL) == 0) {
		if (strcmp(rec.state, STATE_CREATING) == 0 && rec.pid == 0) {
			if (ephemeral)
				index_delete(idx, name, NULL);
			else
				index_set_state(idx, name, STATE_CRASHED, REASON_BOOT_FAILURE, NULL);
		}
		index_record_free(&rec);
	}
	index_close(idx);
}

/* Checks and stores the mounts as the index keeps them. */
static int pack_mounts(const msb_sandbox_options *o, char **out, msb_error *err)
{
	struct mount_spec *specs = calloc(MOUNTS_MAX, sizeof(*specs));
	size_t n = 0;
	int rc = 0;

	if (!specs)
		return err_set(err, -ENOMEM, "out of memory");
	for (const char *const *m = o->mounts; rc == 0 && m && *m; m++) {
		if (n == MOUNTS_MAX)
			rc = err_set(err, -E2BIG, "too many mounts (at most %d)", MOUNTS_MAX);
		else
			rc = mounts_parse_volume(*m, &specs[n++], err);
	}
	for (const char *const *t = o->tmpfs; rc == 0 && t && *t; t++) {
		if (n == MOUNTS_MAX)
			rc = err_set(err, -E2BIG, "too many mounts (at most %d)", MOUNTS_MAX);
		else
			rc = mounts_parse_tmpfs(*t, &specs[n++], err);
	}
	if (rc == 0)
		rc = mounts_check_distinct(specs, n, err);
	if (rc == 0)
		rc = mounts_serialize(specs, n, out, err);
	free(specs);
	return rc;
}

int msb_sandbox_create(const msb_sandbox_options *options, msb_sandbox **out, msb_error *err)
{
	static const msb_sandbox_options defaults;
	const msb_sandbox_options *o = options ? options : &defaults;
	struct sandbox_record rec;
	struct index *idx = NULL;
	char name[HOME_NAME_MAX + 1];
	msb_sandbox *sb;
	int rc;

	if (o->name) {
		rc = home_check_name(o->name, err);
		if (rc < 0)
			return rc;
		snprintf(name, sizeof(name), "%s", o->name);
	} else {
		generate_name(name, sizeof(name));
	}
	{
		char socket_path[PATH_MAX];

		home_path(socket_path, sizeof(socket_path), "sandboxes/%s/virtiofs.sock", name);
		if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return err_set(err, -ENAMETOOLONG,
				       "the sandbox's socket path %s is over %zu bytes; use a shorter MSB_HOME or name",
				       socket_path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	}
	if (o->workdir && o->workdir[0] != '/')
		return err_set(err, -EINVAL, "invalid workdir \"%s\": it must be an absolute path in the guest",
			       o->workdir);

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	if (o->image && !realpath(o->image, rec.image))
		return err_sys(err, -errno, "root image %s", o->image);
	rec.cpus = o->cpus ? o->cpus : DEFAULT_CPUS;
	rec.memory_mib = o->memory_mib ? o->memory_mib : DEFAULT_MEMORY_MIB;
	rec.disk_mib = o->ephemeral ? 0 : (o->disk_mib ? o->disk_mib : DEFAULT_DISK_MIB);
	snprintf(rec.workdir, sizeof(rec.workdir), "%s", o->workdir ? o->workdir : "");
	rec.idle_timeout_s = o->idle_timeout_s;
	rec.max_duration_s = o->max_duration_s;
	rec.ephemeral = o->ephemeral;
	rc = pack_env(o->env, &rec.env, &rec.env_len, err);
	if (rc == 0)
		rc = pack_mounts(o, &rec.mounts, err);
	if (rc < 0) {
		index_record_free(&rec);
		return rc;
	}

	rc = index_open(&idx, err);
	if (rc == 0)
		rc = index_insert(idx, &rec, err);
	index_record_free(&rec);
	index_close(idx);
	if (rc < 0)
		return rc;

	sb = handle_new(name, runtime_path(o->runtime_path));
	if (!sb)
		return err_set(err, -ENOMEM, "out of memory");
	/* A directory left by an earlier sandbox of this name contains nothing
	 * of this one. */
	files_remove_tree(sb->dir);
	cancel_requested = 0;
	rc = spawn(sb, o->ephemeral, o->boot_timeout_s ? o->boot_timeout_s : DEFAULT_BOOT_TIMEOUT_S, err);
	if (rc == -ECANCELED) {
		/* Never usable: nothing of it should stay. */
		msb_sandbox_remove(sb, true, NULL);
		err_set(err, rc, "interrupted; sandbox %s was stopped and removed", sb->name);
	}
	if (rc < 0) {
		abandon_unclaimed(sb->name, o->ephemeral);
		msb_sandbox_free(sb);
		return rc;
	}
	*out = sb;
	return 0;
}

int msb_sandbox_open(const char *name, msb_sandbox **out, msb_error *err)
{
	struct sandbox_record rec;
	struct index *idx;
	msb_sandbox *sb;
	int rc = home_check_name(name, err);

	if (rc == 0)
		rc = index_open(&idx, err);
	if (rc < 0)
		return rc;
	rc = index_get(idx, name, &rec, err);
	index_close(idx);
	if (rc < 0)
		return rc;
	index_record_free(&rec);

	sb = handle_new(name, runtime_path(NULL));
	if (!sb)
		return err_set(err, -ENOMEM, "out of memory");
	*out = sb;
	return 0;
}

int msb_sandbox_start(msb_sandbox *sb, unsigned boot_timeout_s, msb_error *err)
{
	struct sandbox_record rec;
	struct index *idx;
	int rc = index_open(&idx, err);

	if (rc < 0)
		return rc;
	/* A record that still shows "running" after a crash is corrected
	 * first, so that the sandbox can start again. */
	if (index_get(idx, sb->name, &rec, NULL) == 0) {
		index_reconcile(idx, &rec);
		index_record_free(&rec);
	}
	rc = index_claim_start(idx, sb->name, err);
	index_close(idx);
	if (rc < 0)
		return rc;
	cancel_requested = 0;
	rc = spawn(sb, false, boot_timeout_s ? boot_timeout_s : DEFAULT_BOOT_TIMEOUT_S, err);
	if (rc == -ECANCELED) {
		msb_sandbox_kill(sb, NULL);
		abandon_unclaimed(sb->name, false);
		err_set(err, rc, "interrupted; sandbox %s was stopped", sb->name);
	}
	return rc;
}

const char *msb_sandbox_name(const msb_sandbox *sb)
{
	return sb->name;
}

/* ---- Stopping ---- */

/* The sandbox's current record, corrected if its process is gone. */
static int load_record(msb_sandbox *sb, struct sandbox_record *rec, msb_error *err)
{
	struct index *idx;
	int rc = index_open(&idx, err);

	if (rc < 0)
		return rc;
	rc = index_get(idx, sb->name, rec, err);
	if (rc == 0)
		index_reconcile(idx, rec);
	index_close(idx);
	return rc;
}

static bool is_running(const struct sandbox_record *rec)
{
	return rec->pid > 0 && index_process_alive(rec->pid, rec->pid_start_time);
}

static void reap_child(msb_sandbox *sb)
{
	if (sb->child > 0 && waitpid(sb->child, NULL, WNOHANG) == sb->child)
		sb->child = 0;
}

/* Waits until the process of rec is gone; false on timeout. */
static bool wait_gone(msb_sandbox *sb, const struct sandbox_record *rec, int64_t deadline)
{
	for (;;) {
		reap_child(sb);
		if (!index_process_alive(rec->pid, rec->pid_start_time))
			return true;
		if (monotonic_ms() >= deadline)
			return false;
		sleep_ms(10);
	}
}

/* Ends a sandbox process that did not respond, and records the end itself. */
static void force_end(msb_sandbox *sb, const struct sandbox_record *rec, const char *reason)
{
	struct index *idx;

	kill(rec->pid, SIGKILL);
	wait_gone(sb, rec, monotonic_ms() + HARD_STOP_WAIT_MS);
	if (index_open(&idx, NULL) == 0) {
		index_set_state(idx, sb->name, STATE_STOPPED, reason, NULL);
		index_close(idx);
	}
}

static int stop_process(msb_sandbox *sb, int first_signal, unsigned timeout_s, const char *reason, msb_error *err)
{
	struct sandbox_record rec;
	int rc = load_record(sb, &rec, err);

	if (rc < 0)
		return rc;
	index_record_free(&rec);
	if (!is_running(&rec)) {
		reap_child(sb);
		return 0;
	}

	kill(rec.pid, first_signal);
	if (wait_gone(sb, &rec, monotonic_ms() + (int64_t)timeout_s * 1000))
		return 0;
	/* The guest did not power off in time: stop the VM hard. */
	kill(rec.pid, SIGUSR1);
	if (wait_gone(sb, &rec, monotonic_ms() + HARD_STOP_WAIT_MS))
		return 0;
	force_end(sb, &rec, reason);
	return err_set(err, -ETIMEDOUT, "sandbox %s did not stop and its process was killed", sb->name);
}

int msb_sandbox_stop(msb_sandbox *sb, unsigned timeout_s, msb_error *err)
{
	return stop_process(sb, SIGTERM, timeout_s, REASON_STOP, err);
}

int msb_sandbox_kill(msb_sandbox *sb, msb_error *err)
{
	return stop_process(sb, SIGUSR1, HARD_STOP_WAIT_MS / 1000, REASON_KILL, err);
}

int msb_sandbox_remove(msb_sandbox *sb, bool force, msb_error *err)
{
	struct sandbox_record rec;
	struct index *idx;
	int rc = load_record(sb, &rec, err);

	if (rc < 0)
		return rc;
	index_record_free(&rec);
	if (is_running(&rec) || strcmp(rec.state, STATE_CREATING) == 0) {
		if (!force)
			return err_set(err, -EBUSY, "sandbox %s is %s; stop it first, or use --force", sb->name,
				       rec.state);
		rc = msb_sandbox_kill(sb, err);
		if (rc < 0)
			return rc;
	}
	rc = files_remove_tree(sb->dir);
	if (rc < 0)
		return err_sys(err, rc, "remove %s", sb->dir);
	rc = index_open(&idx, err);
	if (rc == 0)
		rc = index_delete(idx, sb->name, err);
	index_close(idx);
	return rc;
}

/* ---- Information ---- */

static void fill_info(const struct sandbox_record *r, msb_sandbox_info *info)
{
	memset(info, 0, sizeof(*info));
	snprintf(info->name, sizeof(info->name), "%s", r->name);
	snprintf(info->state, sizeof(info->state), "%s", r->state);
	snprintf(info->stop_reason, sizeof(info->stop_reason), "%s", r->stop_reason);
	snprintf(info->image, sizeof(info->image), "%s", r->image);
	home_path(info->dir, sizeof(info->dir), "sandboxes/%s", r->name);
	snprintf(info->accel, sizeof(info->accel), "%s", r->accel);
	info->cpus = r->cpus;
	info->memory_mib = r->memory_mib;
	info->disk_mib = r->disk_mib;
	info->idle_timeout_s = r->idle_timeout_s;
	info->max_duration_s = r->max_duration_s;
	info->ephemeral = r->ephemeral;
	info->pid = r->pid;
	info->created_at = r->created_at;
	info->started_at = r->started_at;
	info->stopped_at = r->stopped_at;
}

int msb_sandbox_get_info(msb_sandbox *sb, msb_sandbox_info *info, msb_error *err)
{
	struct sandbox_record rec;
	int rc = load_record(sb, &rec, err);

	if (rc < 0)
		return rc;
	fill_info(&rec, info);
	index_record_free(&rec);
	return 0;
}

int msb_list(msb_sandbox_info **out, size_t *count, msb_error *err)
{
	struct sandbox_record *recs;
	msb_sandbox_info *infos;
	struct index *idx;
	size_t n;
	int rc = index_open(&idx, err);

	if (rc < 0)
		return rc;
	rc = index_list(idx, &recs, &n, err);
	if (rc < 0) {
		index_close(idx);
		return rc;
	}
	infos = calloc(n ? n : 1, sizeof(*infos));
	if (!infos) {
		index_free_records(recs, n);
		index_close(idx);
		return err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		index_reconcile(idx, &recs[i]);
		fill_info(&recs[i], &infos[i]);
	}
	index_free_records(recs, n);
	index_close(idx);
	*out = infos;
	*count = n;
	return 0;
}

void msb_sandbox_free(msb_sandbox *sb)
{
	if (sb)
		reap_child(sb);
	free(sb);
}

int msb_volume_create(const char *name, msb_error *err)
{
	return volumes_create(name, err);
}

/* The sandboxes whose mounts include path, comma-separated into out. */
static void sandboxes_mounting(const char *path, char *out, size_t len)
{
	struct sandbox_record *recs;
	struct mount_spec *specs = calloc(MOUNTS_MAX, sizeof(*specs));
	struct index *idx;
	size_t n, n_specs, used = 0;

	out[0] = 0;
	if (!specs || index_open(&idx, NULL) < 0) {
		free(specs);
		return;
	}
	if (index_list(idx, &recs, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (mounts_deserialize(recs[i].mounts ? recs[i].mounts : "", specs, MOUNTS_MAX, &n_specs,
					       NULL) < 0)
				continue;
			for (size_t j = 0; j < n_specs; j++) {
				if (specs[j].kind == MOUNT_DIR && strcmp(specs[j].source, path) == 0) {
					used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s",
								 used ? ", " : "", recs[i].name);
					break;
				}
			}
		}
		index_free_records(recs, n);
	}
	index_close(idx);
	free(specs);
}

int msb_volume_remove(const char *name, msb_error *err)
{
	char path[PATH_MAX], users[1024];
	int rc = volumes_path(name, path, sizeof(path), err);

	if (rc < 0)
		return rc;
	/* As with container volumes: in use means mounted by any sandbox,
	 * running or not, since a stopped one mounts it again at start. */
	sandboxes_mounting(path, users, sizeof(users));
	if (users[0])
		return err_set(err, -EBUSY, "volume %s is mounted by sandbox %s; remove %s first", name, users,
			       strchr(users, ',') ? "those sandboxes" : "that sandbox");
	return volumes_remove(name, err);
}

int msb_volume_list(char ***names, size_t *count, msb_error *err)
{
	char dir[PATH_MAX];
	struct dirent **entries;
	char **list;
	int n;

	home_path(dir, sizeof(dir), "volumes");
	n = scandir(dir, &entries, NULL, alphasort);
	if (n < 0) {
		*names = NULL;
		*count = 0;
		return errno == ENOENT ? 0 : err_sys(err, -errno, "list %s", dir);
	}
	list = calloc((size_t)n + 1, sizeof(*list));
	*count = 0;
	for (int i = 0; i < n; i++) {
		if (list && entries[i]->d_name[0] != '.')
			list[(*count)++] = strdup(entries[i]->d_name);
		free(entries[i]);
	}
	free(entries);
	if (!list)
		return err_set(err, -ENOMEM, "out of memory");
	*names = list;
	return 0;
}
