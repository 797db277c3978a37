/* virtiofsd for a sandbox's shares. */
#include "shares.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <pwd.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"

/* The descriptor number of the listening socket in virtiofsd. */
#define SHARES_SOCKET_FD 3

/* In a child that is about to exec: report and exit. */
static void child_fail(int log_fd, const char *what, const char *path) __attribute__((noreturn));

static void child_fail(int log_fd, const char *what, const char *path)
{
	dprintf(log_fd, "msb: %s %s: %s\n", what, path ? path : "", strerror(errno));
	_exit(126);
}

/* Enters a user namespace and waits until the parent has written its id
 * maps with newuidmap and newgidmap (see map_ids). The maps come from
 * those setuid helpers, not from the child itself, because a namespace
 * whose gid_map an unprivileged process wrote cannot call setgroups(),
 * and virtiofsd does. */
static void enter_user_namespace(int log_fd, int sync_write, int sync_read)
{
	char ack;

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		child_fail(log_fd, "unshare user and mount namespaces", "(are unprivileged user namespaces disabled?)");
	if (write(sync_write, "u", 1) != 1 || read(sync_read, &ack, 1) != 1 || ack != 'm')
		_exit(126);
}

/* The subordinate id range of the user from /etc/subuid or /etc/subgid. */
static bool subordinate_range(const char *file, const char *user, unsigned id, unsigned long *start,
			      unsigned long *count)
{
	char line[256], id_text[16];
	FILE *f = fopen(file, "re");
	bool found = false;

	if (!f)
		return false;
	snprintf(id_text, sizeof(id_text), "%u", id);
	while (!found && fgets(line, sizeof(line), f)) {
		char *name = strtok(line, ":"), *first = strtok(NULL, ":"), *n = strtok(NULL, ":\n");

		if (name && first && n && (strcmp(name, user) == 0 || strcmp(name, id_text) == 0)) {
			*start = strtoul(first, NULL, 10);
			*count = strtoul(n, NULL, 10);
			found = *count > 0;
		}
	}
	fclose(f);
	return found;
}

/* Runs newuidmap or newgidmap for pid: the guest's 0 is id, and 1 and up
 * are the user's subordinate ids when it has some, so that files the
 * guest's other users create get ids of their own. */
static int run_id_map(const char *helper, const char *file, pid_t pid, unsigned id, const char *user)
{
	char pid_text[16], id_text[16], start_text[24], count_text[24];
	unsigned long start, count;
	int status;
	pid_t child;

	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	snprintf(id_text, sizeof(id_text), "%u", id);
	child = fork();
	if (child == 0) {
		if (user && subordinate_range(file, user, id, &start, &count)) {
			snprintf(start_text, sizeof(start_text), "%lu", start);
			snprintf(count_text, sizeof(count_text), "%lu", count);
			execlp(helper, helper, pid_text, "0", id_text, "1", "1", start_text, count_text, (char *)NULL);
		} else {
			execlp(helper, helper, pid_text, "0", id_text, "1", (char *)NULL);
		}
		_exit(127);
	}
	if (child < 0 || waitpid(child, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EPERM;
	return 0;
}

static int map_ids(pid_t pid, msb_error *err)
{
	struct passwd *pw = getpwuid(getuid());
	const char *user = pw ? pw->pw_name : NULL;
	int rc = run_id_map("newuidmap", "/etc/subuid", pid, (unsigned)getuid(), user);

	if (rc == 0)
		rc = run_id_map("newgidmap", "/etc/subgid", pid, (unsigned)getgid(), user);
	if (rc == -ENOENT)
		return err_set(err, rc, "newuidmap and newgidmap (Debian's uidmap package) are needed to share "
					"directories when msb runs as a user other than root");
	if (rc < 0)
		return err_sys(err, rc, "map ids into virtiofsd's user namespace");
	return 0;
}

/* A read-only remount must keep the flags the source mount is locked
 * with (nosuid, nodev, noexec), or a user namespace refuses it. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long flags = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		flags |= MS_NOEXEC;
	return flags;
}

static void stage_share(int log_fd, const char *staging, unsigned index, const struct mount_spec *m)
{
	char point[PATH_MAX + 32];
	int fd;

	snprintf(point, sizeof(point), "%s/%u", staging, index);
	if (m->kind == MOUNT_FILE) {
		fd = open(point, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			child_fail(log_fd, "create mount point", point);
		close(fd);
	} else if (mkdir(point, 0755) < 0) {
		child_fail(log_fd, "create mount point", point);
	}
	if (mount(m->source, point, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(log_fd, "bind mount", m->source);
	if (m->read_only &&
	    mount(NULL, point, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(m->source), NULL) < 0)
		child_fail(log_fd, "make read-only", m->source);
}

struct child_sync {
	int to_parent;
	int from_parent;
};

static void run_virtiofsd(const char *staging, const struct mount_spec *m, size_t n, int socket_fd, int log_fd,
			  const struct child_sync *sync) __attribute__((noreturn));

static void run_virtiofsd(const char *staging, const struct mount_spec *m, size_t n, int socket_fd, int log_fd,
			  const struct child_sync *sync)
{
	char source_opt[PATH_MAX + 16], fd_opt[32];
	int null_fd;
	unsigned index = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getuid() != 0)
		enter_user_namespace(log_fd, sync->to_parent, sync->from_parent);
	else if (unshare(CLONE_NEWNS) < 0)
		child_fail(log_fd, "unshare mount namespace", NULL);
	/* Nothing below leaks to the host's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(log_fd, "make mounts private", NULL);
	if (mount("tmpfs", staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		child_fail(log_fd, "mount tmpfs on", staging);
	for (size_t i = 0; i < n; i++) {
		if (m[i].kind == MOUNT_TMPFS)
			continue;
		stage_share(log_fd, staging, index++, &m[i]);
	}

	null_fd = open("/dev/null", O_RDONLY);
	dup2(null_fd, 0);
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	if (dup2(socket_fd, SHARES_SOCKET_FD) < 0)
		child_fail(log_fd, "pass socket", NULL);
	snprintf(source_opt, sizeof(source_opt), "source=%s", staging);
	snprintf(fd_opt, sizeof(fd_opt), "--fd=%d", SHARES_SOCKET_FD);
	execl(SHARES_VIRTIOFSD, SHARES_VIRTIOFSD, fd_opt, "-o", source_opt, "-o", "cache=auto", "-o",
	      "sandbox=namespace", "--rlimit-nofile=0", "--thread-pool-size=4", (char *)NULL);
	child_fail(log_fd, "execute", SHARES_VIRTIOFSD);
}

int shares_start(const char *dir, const struct mount_spec *m, size_t n, struct shares *out, msb_error *err)
{
	char staging[PATH_MAX + 16], log_path[PATH_MAX + 32];
	struct sockaddr_un addr;
	struct child_sync sync;
	int socket_fd, log_fd, rc, to_parent[2], from_parent[2];

	if (access(SHARES_VIRTIOFSD, X_OK) < 0)
		return err_sys(err, -errno, "%s (from Debian's qemu-system-common) is needed for -v mounts",
			       SHARES_VIRTIOFSD);
	/* Sources can vanish between create and start. Name the missing one
	 * here, rather than through a failed bind mount in virtiofsd's log. */
	for (size_t i = 0; i < n; i++)
		if (m[i].kind != MOUNT_TMPFS && access(m[i].source, F_OK) < 0)
			return err_sys(err, -errno, "mount source %s (for %s)", m[i].source, m[i].guest);
	snprintf(staging, sizeof(staging), "%s/shares", dir);
	snprintf(out->socket_path, sizeof(out->socket_path), "%s/virtiofs.sock", dir);
	snprintf(log_path, sizeof(log_path), "%s/virtiofsd.log", dir);
	rc = files_mkdir_p(staging, 0700);
	if (rc < 0)
		return err_sys(err, rc, "create %s", staging);

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(out->socket_path) >= sizeof(addr.sun_path))
		return err_set(err, -ENAMETOOLONG, "socket path too long: %s", out->socket_path);
	strcpy(addr.sun_path, out->socket_path);
	unlink(out->socket_path);
	socket_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (socket_fd < 0 || bind(socket_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(socket_fd, 1) < 0) {
		rc = err_sys(err, -errno, "listen on %s", out->socket_path);
		if (socket_fd >= 0)
			close(socket_fd);
		return rc;
	}
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0) {
		close(socket_fd);
		return err_sys(err, -errno, "open %s", log_path);
	}

	if (pipe2(to_parent, O_CLOEXEC) < 0 || pipe2(from_parent, O_CLOEXEC) < 0) {
		close(socket_fd);
		close(log_fd);
		return err_sys(err, -errno, "create pipe");
	}
	sync.to_parent = to_parent[1];
	sync.from_parent = from_parent[0];
	out->pid = fork();
	if (out->pid == 0)
		run_virtiofsd(staging, m, n, socket_fd, log_fd, &sync);
	close(socket_fd);
	close(log_fd);
	close(to_parent[1]);
	close(from_parent[0]);
	if (out->pid < 0) {
		rc = err_sys(err, -errno, "start virtiofsd");
	} else if (getuid() != 0) {
		char ready;

		rc = read(to_parent[0], &ready, 1) == 1 ? map_ids(out->pid, err)
							 : err_set(err, -EIO, "virtiofsd could not enter a user namespace; "
									      "see %s", log_path);
		if (rc == 0 && write(from_parent[1], "m", 1) != 1)
			rc = err_sys(err, -errno, "resume virtiofsd");
		if (rc < 0) {
			kill(out->pid, SIGKILL);
			waitpid(out->pid, NULL, 0);
			out->pid = 0;
		}
	} else {
		rc = 0;
	}
	close(to_parent[0]);
	close(from_parent[1]);
	return rc;
}
