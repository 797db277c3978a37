/* Creating the upper image. */
#include "upper.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/err.h"

int upper_create(const char *path, unsigned size_mib, msb_error *err)
{
	char tmp[PATH_MAX + 16];
	int fd, status;
	pid_t pid;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(err, -errno, "create upper image %s", tmp);
	if (ftruncate(fd, (off_t)size_mib * 1024 * 1024) < 0) {
		int rc = err_sys(err, -errno, "size upper image %s to %u MiB", tmp, size_mib);

		close(fd);
		unlink(tmp);
		return rc;
	}
	close(fd);

	pid = fork();
	if (pid == 0) {
		int null_fd = open("/dev/null", O_RDWR);

		dup2(null_fd, 0);
		dup2(null_fd, 1);
		/* Lazy initialisation keeps mkfs fast and the file sparse; no
		 * blocks are reserved for root, since one user owns it all. */
		execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1",
		       tmp, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		unlink(tmp);
		return err_set(err, -EIO, "mkfs.ext4 %s failed (status %d); is e2fsprogs installed?", tmp,
			       pid < 0 ? -1 : status);
	}
	if (rename(tmp, path) < 0) {
		int rc = err_sys(err, -errno, "rename %s", tmp);

		unlink(tmp);
		return rc;
	}
	return 0;
}
