/* Exec sessions: start a process for core.exec.request, relay its stdio,
 * report how it ended.
 *
 * Every session runs in its own process session (setsid), so a signal from
 * the host reaches the whole process group, as a terminal's would. The
 * child reports a failure before execve() through a close-on-exec pipe; end
 * of file on that pipe means the program started.
 */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../proto/errname.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_TERM "xterm-256color"
/* Output is read in chunks of up to this size, one frame each. Fewer,
 * larger frames cost less under emulation, where every system call and
 * virtqueue notification is expensive. */
#define OUTPUT_CHUNK_BYTES (1024 * 1024)
/* Pipe capacity for stdout and stderr, so that a fast writer fills a
 * chunk before the agent reads it. */
#define OUTPUT_PIPE_BYTES (1024 * 1024)
/* stdin the process has not read yet is queued up to this size; beyond it
 * the host gets core.exec.stdin.error and the data is dropped. msb's
 * clients never get there: they keep at most a window of stdin in flight
 * and learn from msb.exec.stdin.consumed how much the process took. */
#define STDIN_QUEUE_MAX_BYTES (16 * 1024 * 1024)
/* Consumed stdin is reported when this much more was taken, and when the
 * queue runs empty. */
#define STDIN_REPORT_BYTES (256 * 1024)
/* After the process exits, output still in its pipes is forwarded up to
 * this much per stream. The rest can only come from background processes
 * that outlive it, and those could write forever. */
#define EXIT_DRAIN_MAX_BYTES (4 * 1024 * 1024)
#define MAX_GROUPS 64

/* A failure the child reports before execve(). */
enum child_stage {
	STAGE_STDIO,
	STAGE_PTY,
	STAGE_RLIMIT,
	STAGE_USER,
	STAGE_CWD,
	STAGE_EXEC,
};

struct child_error {
	int stage;
	int err;
	char path[256]; /* the program or directory concerned */
};

struct user_info {
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int n_groups;
	char name[64];
	char home[256];
};

struct exec_plan {
	char *cmd;
	char **argv;
	char **envp;
	char *cwd;
	struct user_info user;
	struct rlimit_item {
		int resource;
		struct rlimit value;
	} *rlimits;
	size_t n_rlimits;
	bool tty;
	struct winsize winsize;
};

/* ---- Failure replies ---- */

static void send_failed(struct agent *a, uint32_t id, const char *kind, int err, const char *stage,
			const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void send_failed(struct agent *a, uint32_t id, const char *kind, int err, const char *stage,
			const char *fmt, ...)
{
	char message[512];
	struct msg m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);

	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_FAILED;
	m.id = id;
	m.u.exec_failed.kind = span_cstr(kind);
	if (err) {
		m.u.exec_failed.err = (struct opt_i32){ true, err };
		m.u.exec_failed.errno_name = span_cstr(errno_name(err));
	}
	m.u.exec_failed.message = span_cstr(message);
	m.u.exec_failed.stage = span_cstr(stage);
	agent_send(a, &m);
}

/* ---- Building the plan from the request ---- */

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void free_plan(struct exec_plan *p)
{
	free(p->cmd);
	free(p->cwd);
	free_strv(p->argv);
	free_strv(p->envp);
	free(p->rlimits);
}

static bool lookup_user_by_name(const char *name, struct user_info *u)
{
	struct passwd *pw = getpwnam(name);

	if (!pw)
		return false;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	return true;
}

static bool parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!*s)
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == 0 && *out <= 0xfffffffeul;
}

/* Resolves "", "name", "uid", "name:group" or "uid:gid". Returns NULL or a
 * message describing why the user cannot be used. */
static const char *resolve_user(struct agent *a, const char *spec, struct user_info *u, char *why, size_t why_len)
{
	char user_part[128], *group_part;
	unsigned long id;

	memset(u, 0, sizeof(*u));
	u->uid = a->default_uid;
	u->gid = a->default_gid;
	strcpy(u->home, "/");

	if (!spec || !*spec) {
		struct passwd *pw = getpwuid(u->uid);

		if (pw && lookup_user_by_name(pw->pw_name, u))
			goto groups;
		u->groups[0] = u->gid;
		u->n_groups = 1;
		return NULL;
	}

	snprintf(user_part, sizeof(user_part), "%s", spec);
	group_part = strchr(user_part, ':');
	if (group_part)
		*group_part++ = 0;

	if (parse_id(user_part, &id)) {
		struct passwd *pw = getpwuid((uid_t)id);

		if (!pw || !lookup_user_by_name(pw->pw_name, u)) {
			u->uid = (uid_t)id;
			u->gid = (gid_t)id;
			u->name[0] = 0;
		}
	} else if (!lookup_user_by_name(user_part, u)) {
		snprintf(why, why_len, "user %s not found in /etc/passwd", user_part);
		return why;
	}

	if (group_part) {
		struct group *gr;

		if (parse_id(group_part, &id)) {
			u->gid = (gid_t)id;
		} else if ((gr = getgrnam(group_part))) {
			u->gid = gr->gr_gid;
		} else {
			snprintf(why, why_len, "group %s not found in /etc/group", group_part);
			return why;
		}
	}

groups:
	u->n_groups = MAX_GROUPS;
	if (!u->name[0] || getgrouplist(u->name, u->gid, u->groups, &u->n_groups) < 0) {
		u->groups[0] = u->gid;
		u->n_groups = 1;
	}
	return NULL;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{ "cpu", RLIMIT_CPU },
	{ "fsize", RLIMIT_FSIZE },
	{ "data", RLIMIT_DATA },
	{ "stack", RLIMIT_STACK },
	{ "core", RLIMIT_CORE },
	{ "rss", RLIMIT_RSS },
	{ "nproc", RLIMIT_NPROC },
	{ "nofile", RLIMIT_NOFILE },
	{ "memlock", RLIMIT_MEMLOCK },
	{ "as", RLIMIT_AS },
	{ "locks", RLIMIT_LOCKS },
	{ "sigpending", RLIMIT_SIGPENDING },
	{ "msgqueue", RLIMIT_MSGQUEUE },
	{ "nice", RLIMIT_NICE },
	{ "rtprio", RLIMIT_RTPRIO },
	{ "rttime", RLIMIT_RTTIME },
};

static int rlimit_resource(struct span name)
{
	for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++)
		if (span_eq_cstr(name, rlimit_names[i].name))
			return rlimit_names[i].resource;
	return -1;
}

static bool env_has_key(char **envp, size_t n, const char *entry)
{
	size_t key_len = strcspn(entry, "=");

	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], entry, key_len) == 0 && envp[i][key_len] == '=')
			return true;
	return false;
}

/* The environment of the process: the request's entries, then the defaults
 * that the request does not set. */
static char **build_env(const struct msg_exec_request *req, const struct user_info *u, bool tty, char *why,
			size_t why_len)
{
	char defaults[5][300];
	size_t n_defaults = 0, n = 0;
	char **envp = calloc(req->n_env + 6, sizeof(char *));

	if (!envp)
		return NULL;

	for (size_t i = 0; i < req->n_env; i++) {
		char *entry = span_strdup(req->env[i]);

		if (!entry || !strchr(entry, '=') || entry[0] == '=') {
			snprintf(why, why_len, "environment entry %zu %s", i,
				 entry ? "is not KEY=VALUE" : "contains a NUL byte");
			free(entry);
			free_strv(envp);
			return NULL;
		}
		if (env_has_key(envp, n, entry)) {
			/* A later entry for the same key wins, as in a shell. */
			size_t key_len = strcspn(entry, "=");

			for (size_t j = 0; j < n; j++) {
				if (strncmp(envp[j], entry, key_len) == 0 && envp[j][key_len] == '=') {
					free(envp[j]);
					envp[j] = entry;
				}
			}
			continue;
		}
		envp[n++] = entry;
	}

	snprintf(defaults[n_defaults++], sizeof(defaults[0]), "PATH=%s", DEFAULT_PATH);
	snprintf(defaults[n_defaults++], sizeof(defaults[0]), "HOME=%s", u->home);
	if (u->name[0]) {
		snprintf(defaults[n_defaults++], sizeof(defaults[0]), "USER=%s", u->name);
		snprintf(defaults[n_defaults++], sizeof(defaults[0]), "LOGNAME=%s", u->name);
	}
	if (tty)
		snprintf(defaults[n_defaults++], sizeof(defaults[0]), "TERM=%s", DEFAULT_TERM);

	for (size_t i = 0; i < n_defaults; i++) {
		if (env_has_key(envp, n, defaults[i]))
			continue;
		envp[n] = strdup(defaults[i]);
		if (!envp[n]) {
			free_strv(envp);
			return NULL;
		}
		n++;
	}
	return envp;
}

/* Fills plan from the request; on failure sends core.exec.failed and
 * returns false. */
static bool build_plan(struct agent *a, const struct msg *m, struct exec_plan *plan)
{
	const struct msg_exec_request *req = &m->u.exec_request;
	char why[300], *user_spec = NULL;

	memset(plan, 0, sizeof(*plan));
	plan->cmd = span_strdup(req->cmd);
	if (!plan->cmd || !*plan->cmd) {
		send_failed(a, m->id, "bad_args", 0, "request", "the program name is %s",
			    plan->cmd ? "empty" : "not valid text (it contains a NUL byte)");
		return false;
	}

	plan->argv = calloc(req->n_args + 2, sizeof(char *));
	if (!plan->argv)
		goto oom;
	plan->argv[0] = strdup(plan->cmd);
	for (size_t i = 0; i < req->n_args; i++) {
		plan->argv[i + 1] = span_strdup(req->args[i]);
		if (!plan->argv[i + 1]) {
			send_failed(a, m->id, "bad_args", 0, "request", "argument %zu contains a NUL byte", i + 1);
			return false;
		}
	}

	if (req->cwd.ptr && !(plan->cwd = span_strdup(req->cwd))) {
		send_failed(a, m->id, "bad_cwd", 0, "request", "the working directory contains a NUL byte");
		return false;
	}

	if (req->user.ptr && !(user_spec = span_strdup(req->user))) {
		send_failed(a, m->id, "user_setup_failed", 0, "request", "the user name contains a NUL byte");
		return false;
	}
	if (resolve_user(a, user_spec, &plan->user, why, sizeof(why))) {
		send_failed(a, m->id, "user_setup_failed", 0, "user", "%s", why);
		free(user_spec);
		return false;
	}
	free(user_spec);

	plan->envp = build_env(req, &plan->user, req->tty, why, sizeof(why));
	if (!plan->envp) {
		send_failed(a, m->id, "bad_args", 0, "request", "%s", why);
		return false;
	}

	plan->rlimits = calloc(req->n_rlimits + 1, sizeof(*plan->rlimits));
	if (!plan->rlimits)
		goto oom;
	for (size_t i = 0; i < req->n_rlimits; i++) {
		const struct msg_rlimit *r = &req->rlimits[i];
		int resource = rlimit_resource(r->resource);

		if (resource < 0 || r->soft > r->hard) {
			send_failed(a, m->id, "bad_args", 0, "request", "rlimit %.*s: %s", (int)r->resource.len,
				    (const char *)r->resource.ptr,
				    resource < 0 ? "unknown resource" : "soft limit above hard limit");
			return false;
		}
		plan->rlimits[plan->n_rlimits].resource = resource;
		plan->rlimits[plan->n_rlimits].value.rlim_cur = r->soft == UINT64_MAX ? RLIM_INFINITY : r->soft;
		plan->rlimits[plan->n_rlimits].value.rlim_max = r->hard == UINT64_MAX ? RLIM_INFINITY : r->hard;
		plan->n_rlimits++;
	}

	plan->tty = req->tty;
	plan->winsize.ws_row = req->rows ? req->rows : MSG_DEFAULT_ROWS;
	plan->winsize.ws_col = req->cols ? req->cols : MSG_DEFAULT_COLS;
	return true;

oom:
	send_failed(a, m->id, "out_of_memory", ENOMEM, "request", "out of memory while preparing the process");
	return false;
}

/* ---- The child ---- */

static struct rlimit default_nofile;
static mode_t default_umask = 022;

void exec_save_default_limits(void)
{
	mode_t old = umask(022);

	umask(old);
	default_umask = old;
	if (getrlimit(RLIMIT_NOFILE, &default_nofile) < 0) {
		default_nofile.rlim_cur = 1024;
		default_nofile.rlim_max = 4096;
	}
}

static void child_report(int err_fd, int stage, int err, const char *path) __attribute__((noreturn));

static void child_report(int err_fd, int stage, int err, const char *path)
{
	struct child_error ce;

	memset(&ce, 0, sizeof(ce));
	ce.stage = stage;
	ce.err = err;
	if (path)
		snprintf(ce.path, sizeof(ce.path), "%s", path);
	if (write(err_fd, &ce, sizeof(ce)) < 0)
		_exit(126);
	_exit(127);
}

static const char *env_get(char **envp, const char *key)
{
	size_t key_len = strlen(key);

	for (char **e = envp; *e; e++)
		if (strncmp(*e, key, key_len) == 0 && (*e)[key_len] == '=')
			return *e + key_len + 1;
	return NULL;
}

/* execve(), and for a script without "#!" the shell, as execvp() does.
 * Returns only on failure, with errno set. */
static void exec_file(const struct exec_plan *p, const char *path)
{
	char *argv_sh[256];
	size_t n = 0;

	execve(path, p->argv, p->envp);
	if (errno != ENOEXEC)
		return;
	argv_sh[n++] = "/bin/sh";
	argv_sh[n++] = (char *)path;
	for (size_t i = 1; p->argv[i] && n < 255; i++)
		argv_sh[n++] = p->argv[i];
	argv_sh[n] = NULL;
	execve("/bin/sh", argv_sh, p->envp);
	errno = ENOEXEC;
}

/* Runs the program, searching PATH for a name without '/'. Returns the
 * errno to report and the path it concerns. */
static int exec_program(const struct exec_plan *p, char *failed_path, size_t failed_len)
{
	const char *path_env, *dir;
	char candidate[4096];
	int result = ENOENT;

	snprintf(failed_path, failed_len, "%s", p->cmd);
	if (strchr(p->cmd, '/')) {
		exec_file(p, p->cmd);
		return errno;
	}

	path_env = env_get(p->envp, "PATH");
	if (!path_env)
		path_env = DEFAULT_PATH;
	for (dir = path_env; dir; dir = strchr(dir, ':') ? strchr(dir, ':') + 1 : NULL) {
		size_t dir_len = strcspn(dir, ":");

		snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)(dir_len ? dir_len : 1), dir_len ? dir : ".",
			 p->cmd);
		exec_file(p, candidate);
		if (errno == EACCES) {
			result = EACCES;
			snprintf(failed_path, failed_len, "%s", candidate);
		} else if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(failed_path, failed_len, "%s", candidate);
			return errno;
		}
	}
	return result;
}

struct child_fds {
	int in, out, err; /* for a terminal session all three are the pty */
	int report;       /* write end of the error pipe */
};

static void run_child(const struct exec_plan *p, const struct child_fds *fds) __attribute__((noreturn));

static void run_child(const struct exec_plan *p, const struct child_fds *fds)
{
	char failed_path[256];
	sigset_t none;
	int err;

	/* The agent blocks SIGCHLD and ignores SIGPIPE; a program starts with
	 * default dispositions and an empty mask. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);

	if (setsid() < 0)
		child_report(fds->report, STAGE_STDIO, errno, NULL);
	if (p->tty && ioctl(fds->in, TIOCSCTTY, 0) < 0)
		child_report(fds->report, STAGE_PTY, errno, NULL);
	if (dup2(fds->in, 0) < 0 || dup2(fds->out, 1) < 0 || dup2(fds->err, 2) < 0)
		child_report(fds->report, STAGE_STDIO, errno, NULL);

	/* The agent raised its own limit and cleared its umask; a process
	 * starts with those the system gave the agent. */
	setrlimit(RLIMIT_NOFILE, &default_nofile);
	umask(default_umask);
	for (size_t i = 0; i < p->n_rlimits; i++)
		if (setrlimit(p->rlimits[i].resource, &p->rlimits[i].value) < 0)
			child_report(fds->report, STAGE_RLIMIT, errno, NULL);

	if (setgroups((size_t)p->user.n_groups, p->user.groups) < 0 || setgid(p->user.gid) < 0 ||
	    setuid(p->user.uid) < 0)
		child_report(fds->report, STAGE_USER, errno, NULL);

	if (p->cwd ? chdir(p->cwd) < 0 : chdir(p->user.home) < 0 && chdir("/") < 0)
		child_report(fds->report, STAGE_CWD, errno, p->cwd ? p->cwd : p->user.home);

	err = exec_program(p, failed_path, sizeof(failed_path));
	child_report(fds->report, STAGE_EXEC, err, failed_path);
}

/* ---- Starting a session ---- */

static void report_child_error(struct agent *a, uint32_t id, const struct exec_plan *p, const struct child_error *ce)
{
	struct stat st;
	int err = ce->err;

	switch (ce->stage) {
	case STAGE_CWD:
		send_failed(a, id, "bad_cwd", err, "cwd", "working directory %s: %s", ce->path, strerror(err));
		return;
	case STAGE_USER:
		send_failed(a, id, "user_setup_failed", err, "user", "switch to uid %u gid %u: %s",
			    (unsigned)p->user.uid, (unsigned)p->user.gid, strerror(err));
		return;
	case STAGE_RLIMIT:
		send_failed(a, id, "resource_limit", err, "rlimit", "set resource limits: %s", strerror(err));
		return;
	case STAGE_PTY:
		send_failed(a, id, "pty_setup_failed", err, "pty", "make the terminal controlling: %s", strerror(err));
		return;
	case STAGE_STDIO:
		send_failed(a, id, "other", err, "stdio", "set up standard streams: %s", strerror(err));
		return;
	}

	switch (err) {
	case ENOENT:
	case ENOTDIR:
		if (strchr(p->cmd, '/'))
			send_failed(a, id, "not_found", err, "exec", "no such file: %s", ce->path);
		else
			send_failed(a, id, "not_found", err, "exec", "program not found: %s (searched PATH)", p->cmd);
		return;
	case EACCES:
		if (stat(ce->path, &st) == 0 && S_ISDIR(st.st_mode))
			send_failed(a, id, "not_executable", err, "exec", "%s is a directory, not a program", ce->path);
		else if (stat(ce->path, &st) == 0 && S_ISREG(st.st_mode) && !(st.st_mode & 0111))
			send_failed(a, id, "not_executable", err, "exec", "%s is not executable (mode %03o)", ce->path,
				    st.st_mode & 0777);
		else
			send_failed(a, id, "permission_denied", err, "exec", "permission denied: %s", ce->path);
		return;
	case ENOEXEC:
		send_failed(a, id, "not_executable", err, "exec", "%s is not in an executable format", ce->path);
		return;
	case E2BIG:
		send_failed(a, id, "bad_args", err, "exec", "arguments and environment are too large: %s", ce->path);
		return;
	case ENOMEM:
		send_failed(a, id, "out_of_memory", err, "exec", "out of memory starting %s", ce->path);
		return;
	default:
		send_failed(a, id, "other", err, "exec", "execute %s: %s", ce->path, strerror(err));
		return;
	}
}

static struct session *find_session(struct agent *a, uint32_t id)
{
	for (struct session *s = a->sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static void set_nonblocking(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Creates the host-side and child-side ends of the standard streams. */
static int open_stdio(struct exec_plan *p, struct session *s, struct child_fds *cf)
{
	if (p->tty) {
		int master, slave;

		if (openpty(&master, &slave, NULL, NULL, &p->winsize) < 0)
			return -errno;
		fcntl(master, F_SETFD, FD_CLOEXEC);
		fcntl(slave, F_SETFD, FD_CLOEXEC);
		s->stdout_fd = master;
		s->stdin_fd = fcntl(master, F_DUPFD_CLOEXEC, 3); /* a separate epoll registration */
		s->stderr_fd = -1;
		cf->in = cf->out = cf->err = slave;
		if (s->stdin_fd < 0) {
			close(master);
			close(slave);
			return -errno;
		}
		return 0;
	}

	int in[2], out[2], err[2];

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	fcntl(out[0], F_SETPIPE_SZ, OUTPUT_PIPE_BYTES);
	fcntl(err[0], F_SETPIPE_SZ, OUTPUT_PIPE_BYTES);
	s->stdin_fd = in[1];
	s->stdout_fd = out[0];
	s->stderr_fd = err[0];
	cf->in = in[0];
	cf->out = out[1];
	cf->err = err[1];
	return 0;
}

static void close_child_ends(const struct child_fds *cf)
{
	close(cf->in);
	if (cf->out != cf->in)
		close(cf->out);
	if (cf->err != cf->in && cf->err != cf->out)
		close(cf->err);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void free_session_fds(struct agent *a, struct session *s)
{
	if (s->stdout_fd >= 0)
		agent_watch(a, s->stdout_fd, NULL, -1);
	if (s->stderr_fd >= 0)
		agent_watch(a, s->stderr_fd, NULL, -1);
	if (s->stdin_fd >= 0 && s->stdin_watched)
		agent_watch(a, s->stdin_fd, NULL, -1);
	close_fd(&s->stdout_fd);
	close_fd(&s->stderr_fd);
	close_fd(&s->stdin_fd);
	buf_free(&s->stdin_queue);
}

bool exec_id_paused(const struct agent *a, uint32_t id)
{
	for (unsigned i = 0; i < a->n_paused_ranges; i++)
		if (id >= a->paused_ranges[i].start && id < a->paused_ranges[i].end)
			return true;
	return false;
}

/* Output is read unless the channel to the host is full or the session's
 * client reads slowly. */
static int output_events(const struct agent *a, const struct session *s)
{
	return a->output_paused || s->flow_paused ? 0 : EPOLLIN;
}

static void watch_output(struct agent *a, struct session *s)
{
	int events;

	s->flow_paused = exec_id_paused(a, s->id);
	events = output_events(a, s);

	s->w_stdout = (struct watch){ WATCH_SESSION_STDOUT, s };
	s->w_stderr = (struct watch){ WATCH_SESSION_STDERR, s };
	s->w_stdin = (struct watch){ WATCH_SESSION_STDIN, s };
	set_nonblocking(s->stdout_fd);
	set_nonblocking(s->stdin_fd);
	agent_watch(a, s->stdout_fd, &s->w_stdout, events);
	if (s->stderr_fd >= 0) {
		set_nonblocking(s->stderr_fd);
		agent_watch(a, s->stderr_fd, &s->w_stderr, events);
	}
}

void exec_handle_request(struct agent *a, const struct msg *m)
{
	struct exec_plan plan;
	struct child_fds cf;
	struct child_error ce;
	struct session *s;
	int report[2], rc;
	ssize_t n;
	pid_t pid;

	if (find_session(a, m->id)) {
		send_failed(a, m->id, "other", EBUSY, "request", "session id %u is already in use", m->id);
		return;
	}
	if (!build_plan(a, m, &plan)) {
		free_plan(&plan);
		return;
	}

	s = calloc(1, sizeof(*s));
	if (!s) {
		send_failed(a, m->id, "out_of_memory", ENOMEM, "request", "out of memory for a new session");
		free_plan(&plan);
		return;
	}
	s->id = m->id;
	s->tty = plan.tty;
	s->stdin_fd = s->stdout_fd = s->stderr_fd = -1;
	buf_init(&s->stdin_queue);

	rc = open_stdio(&plan, s, &cf);
	if (rc < 0) {
		send_failed(a, m->id, plan.tty ? "pty_setup_failed" : "resource_limit", -rc, plan.tty ? "pty" : "stdio",
			    "create %s: %s", plan.tty ? "a pseudo-terminal" : "pipes", strerror(-rc));
		goto fail;
	}
	if (pipe2(report, O_CLOEXEC) < 0) {
		send_failed(a, m->id, "resource_limit", errno, "stdio", "create the report pipe: %s", strerror(errno));
		close_child_ends(&cf);
		goto fail;
	}
	cf.report = report[1];

	pid = fork();
	if (pid == 0)
		run_child(&plan, &cf);
	close(report[1]);
	close_child_ends(&cf);
	if (pid < 0) {
		int err = errno;

		send_failed(a, m->id, err == ENOMEM ? "out_of_memory" : "resource_limit", err, "fork",
			    "start a process: %s", strerror(err));
		close(report[0]);
		goto fail;
	}

	do
		n = read(report[0], &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof(ce)) {
		/* The child exits right after its report; reap it here so that
		 * its status is not mistaken for anything else. */
		waitpid(pid, NULL, 0);
		report_child_error(a, m->id, &plan, &ce);
		goto fail;
	}

	s->pid = pid;
	s->next = a->sessions;
	a->sessions = s;
	watch_output(a, s);
	free_plan(&plan);

	struct msg started;

	memset(&started, 0, sizeof(started));
	started.type = MSG_EXEC_STARTED;
	started.id = s->id;
	started.u.exec_started.pid = (uint32_t)pid;
	agent_send(a, &started);
	return;

fail:
	free_session_fds(a, s);
	free(s);
	free_plan(&plan);
}

/* ---- Running sessions ---- */

static void unlink_session(struct agent *a, struct session *s)
{
	for (struct session **p = &a->sessions; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			return;
		}
	}
}

/* Reads once from a session stream and forwards what it got. The data is
 * read straight into the output queue and framed in place, saving a copy
 * of every byte, which costs under emulation. Returns the byte count, 0
 * at end of stream, or -EAGAIN when nothing is there. */
static ssize_t forward_output(struct agent *a, struct session *s, int fd, enum msg_type type)
{
	uint8_t prefix[MSG_DATA_PREFIX_MAX], *base;
	int full_prefix, prefix_len;
	ssize_t n;

	/* The prefix of a full chunk; a shorter read may need fewer bytes
	 * of length heads, and then its data moves to close the gap. */
	full_prefix = msg_put_data_prefix(prefix, type, s->id, OUTPUT_CHUNK_BYTES);
	if (full_prefix < 0 || buf_reserve(&a->out, (size_t)full_prefix + OUTPUT_CHUNK_BYTES) < 0)
		return -EAGAIN;
	base = a->out.data + a->out.len;
	do
		n = read(fd, base + full_prefix, OUTPUT_CHUNK_BYTES);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		/* A pty master reports EIO once no process has the terminal open. */
		return errno == EAGAIN ? -EAGAIN : 0;
	if (n == 0 || s->detached)
		return n;

	prefix_len = msg_put_data_prefix(prefix, type, s->id, (size_t)n);
	if (prefix_len < 0)
		return n;
	if (prefix_len != full_prefix)
		memmove(base + prefix_len, base + full_prefix, (size_t)n);
	memcpy(base, prefix, (size_t)prefix_len);
	a->out.len += (size_t)prefix_len + (size_t)n;
	agent_flush(a);
	return n;
}

static void close_output(struct agent *a, int *fd)
{
	agent_watch(a, *fd, NULL, -1);
	close_fd(fd);
}

static void drain_after_exit(struct agent *a, struct session *s, int *fd, enum msg_type type)
{
	size_t total = 0;

	while (*fd >= 0 && total < EXIT_DRAIN_MAX_BYTES) {
		ssize_t n = forward_output(a, s, *fd, type);

		if (n <= 0)
			break;
		total += (size_t)n;
	}
}

static void finish_session(struct agent *a, struct session *s, int status)
{
	struct msg m;

	drain_after_exit(a, s, &s->stdout_fd, MSG_EXEC_STDOUT);
	drain_after_exit(a, s, &s->stderr_fd, MSG_EXEC_STDERR);

	if (!s->detached) {
		memset(&m, 0, sizeof(m));
		m.type = MSG_EXEC_EXITED;
		m.id = s->id;
		if (WIFSIGNALED(status)) {
			m.u.exec_exited.code = -1;
			m.u.exec_exited.signal = (struct opt_i32){ true, WTERMSIG(status) };
		} else {
			m.u.exec_exited.code = WEXITSTATUS(status);
		}
		agent_send(a, &m);
	}

	/* Events for this session may still wait in the current epoll
	 * batch, so the memory is released only after the batch. */
	unlink_session(a, s);
	free_session_fds(a, s);
	s->finished = true;
	s->next = a->finished_sessions;
	a->finished_sessions = s;
}

void exec_free_finished(struct agent *a)
{
	while (a->finished_sessions) {
		struct session *s = a->finished_sessions;

		a->finished_sessions = s->next;
		free(s);
	}
}

void exec_reap_children(struct agent *a)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		for (struct session *s = a->sessions; s; s = s->next) {
			if (s->pid == pid) {
				finish_session(a, s, status);
				break;
			}
		}
		/* Any other pid was an orphan that PID 1 inherited. */
	}
}

static void stdin_error(struct agent *a, struct session *s, int err, const char *what)
{
	struct msg m;
	char message[200];

	buf_free(&s->stdin_queue);
	if (s->stdin_error_sent || s->detached)
		return;
	s->stdin_error_sent = true;
	snprintf(message, sizeof(message), "%s: %s", what, strerror(err));
	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_STDIN_ERROR;
	m.id = s->id;
	m.u.exec_stdin_error.err = (struct opt_i32){ true, err };
	m.u.exec_stdin_error.errno_name = span_cstr(errno_name(err));
	m.u.exec_stdin_error.message = span_cstr(message);
	agent_send(a, &m);
}

static void close_stdin(struct agent *a, struct session *s)
{
	if (s->stdin_fd < 0)
		return;
	if (s->stdin_watched)
		agent_watch(a, s->stdin_fd, NULL, -1);
	s->stdin_watched = false;
	close_fd(&s->stdin_fd);
}

static void report_stdin_consumed(struct agent *a, struct session *s)
{
	struct msg m;

	if (s->detached || s->stdin_consumed == s->stdin_reported)
		return;
	if (s->stdin_consumed - s->stdin_reported < STDIN_REPORT_BYTES && buf_pending(&s->stdin_queue) > 0)
		return;
	memset(&m, 0, sizeof(m));
	m.type = MSG_EXEC_STDIN_CONSUMED;
	m.id = s->id;
	m.u.exec_stdin_consumed.bytes = s->stdin_consumed;
	agent_send(a, &m);
	s->stdin_reported = s->stdin_consumed;
}

/* Writes as much queued stdin as the process takes; watches for room when
 * some is left. */
static void flush_stdin(struct agent *a, struct session *s)
{
	bool want_watch;

	while (s->stdin_fd >= 0 && buf_pending(&s->stdin_queue) > 0) {
		ssize_t n = write(s->stdin_fd, buf_peek(&s->stdin_queue), buf_pending(&s->stdin_queue));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			stdin_error(a, s, errno, "write to the process's stdin");
			close_stdin(a, s);
			return;
		}
		buf_consume(&s->stdin_queue, (size_t)n);
		s->stdin_consumed += (uint64_t)n;
	}
	buf_shrink(&s->stdin_queue);
	report_stdin_consumed(a, s);

	if (s->stdin_fd >= 0 && s->stdin_closing && buf_pending(&s->stdin_queue) == 0) {
		if (s->tty) {
			/* Closing the pty master would hang up the whole session;
			 * end of input on a terminal is the EOF character. */
			char eof = 4;

			if (write(s->stdin_fd, &eof, 1) < 0)
				stdin_error(a, s, errno, "write end of input to the terminal");
			s->stdin_closing = false;
		} else {
			close_stdin(a, s);
			return;
		}
	}

	want_watch = s->stdin_fd >= 0 && buf_pending(&s->stdin_queue) > 0;
	if (want_watch != s->stdin_watched) {
		agent_watch(a, s->stdin_fd, &s->w_stdin, want_watch ? EPOLLOUT : -1);
		s->stdin_watched = want_watch;
	}
}

void exec_handle_stdin(struct agent *a, const struct msg *m)
{
	struct session *s = find_session(a, m->id);
	struct span data = m->u.data.data;

	if (!s || s->detached)
		return;
	if (s->stdin_fd < 0) {
		if (data.len > 0)
			stdin_error(a, s, EPIPE, "stdin is closed");
		return;
	}
	if (data.len == 0) {
		s->stdin_closing = true;
	} else if (buf_pending(&s->stdin_queue) + data.len > STDIN_QUEUE_MAX_BYTES) {
		stdin_error(a, s, ENOBUFS, "the process is not reading stdin and the queue is full");
		return;
	} else if (buf_append(&s->stdin_queue, data.ptr, data.len) < 0) {
		stdin_error(a, s, ENOMEM, "queue stdin");
		return;
	}
	flush_stdin(a, s);
}

void exec_handle_resize(struct agent *a, const struct msg *m)
{
	struct session *s = find_session(a, m->id);
	struct winsize ws;

	if (!s || !s->tty || s->stdout_fd < 0)
		return;
	memset(&ws, 0, sizeof(ws));
	ws.ws_row = m->u.exec_resize.rows;
	ws.ws_col = m->u.exec_resize.cols;
	if (ioctl(s->stdout_fd, TIOCSWINSZ, &ws) < 0)
		agent_error("resize terminal of session %u: %s", s->id, strerror(errno));
}

void exec_handle_signal(struct agent *a, const struct msg *m)
{
	struct session *s = find_session(a, m->id);
	int sig = m->u.exec_signal.signal;

	if (!s)
		return;
	if (sig <= 0 || sig >= NSIG) {
		agent_error("session %u: signal %d is out of range", s->id, sig);
		return;
	}
	/* The process leads its own group; signal the group as a terminal
	 * would, or the process alone if the group is gone. */
	if (kill(-s->pid, sig) < 0)
		kill(s->pid, sig);
}

void exec_handle_event(struct agent *a, struct watch *w, uint32_t events)
{
	struct session *s = w->session;

	if (s->finished)
		return;
	switch (w->kind) {
	case WATCH_SESSION_STDOUT:
		if (forward_output(a, s, s->stdout_fd, MSG_EXEC_STDOUT) == 0)
			close_output(a, &s->stdout_fd);
		break;
	case WATCH_SESSION_STDERR:
		if (forward_output(a, s, s->stderr_fd, MSG_EXEC_STDERR) == 0)
			close_output(a, &s->stderr_fd);
		break;
	case WATCH_SESSION_STDIN:
		if (events & (EPOLLERR | EPOLLHUP)) {
			stdin_error(a, s, EPIPE, "the process closed stdin");
			close_stdin(a, s);
		} else {
			flush_stdin(a, s);
		}
		break;
	default:
		break;
	}
}

static void update_output_watch(struct agent *a, struct session *s)
{
	int events = output_events(a, s);

	if (s->stdout_fd >= 0)
		agent_watch(a, s->stdout_fd, &s->w_stdout, events);
	if (s->stderr_fd >= 0)
		agent_watch(a, s->stderr_fd, &s->w_stderr, events);
}

void exec_set_output_paused(struct agent *a, bool paused)
{
	a->output_paused = paused;
	for (struct session *s = a->sessions; s; s = s->next)
		update_output_watch(a, s);
}

void exec_set_flow(struct agent *a, uint32_t start, uint32_t end, bool paused)
{
	unsigned i;

	for (i = 0; i < a->n_paused_ranges; i++)
		if (a->paused_ranges[i].start == start && a->paused_ranges[i].end == end)
			break;
	if (paused && i == a->n_paused_ranges && i < AGENT_MAX_PAUSED_RANGES) {
		a->paused_ranges[i].start = start;
		a->paused_ranges[i].end = end;
		a->n_paused_ranges++;
	} else if (!paused && i < a->n_paused_ranges) {
		a->paused_ranges[i] = a->paused_ranges[--a->n_paused_ranges];
	}

	for (struct session *s = a->sessions; s; s = s->next) {
		if (s->id < start || s->id >= end)
			continue;
		s->flow_paused = paused;
		update_output_watch(a, s);
	}
}

void exec_detach_range(struct agent *a, uint32_t id_start, uint32_t id_end_exclusive)
{
	/* The range's next owner starts unpaused. */
	exec_set_flow(a, id_start, id_end_exclusive, false);
	for (struct session *s = a->sessions; s; s = s->next) {
		if (s->id < id_start || s->id >= id_end_exclusive)
			continue;
		s->detached = true;
		buf_free(&s->stdin_queue);
		close_stdin(a, s);
		if (kill(-s->pid, SIGKILL) < 0)
			kill(s->pid, SIGKILL);
	}
}

void exec_kill_all(struct agent *a)
{
	for (struct session *s = a->sessions; s; s = s->next)
		if (kill(-s->pid, SIGKILL) < 0)
			kill(s->pid, SIGKILL);
}
