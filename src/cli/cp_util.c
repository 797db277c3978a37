/* msb cp: path helpers, guest-side preparation of destinations, files
 * written through a temporary name, and signal handling. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
#include "cli.h"
#include "cp.h"

char *cp_join(const char *dir, const char *name)
{
	size_t len = strlen(dir);
	char *path;

	if (asprintf(&path, "%s%s%s", dir, len && dir[len - 1] == '/' ? "" : "/", name) < 0)
		return NULL;
	return path;
}

char *cp_strip_slashes(const char *path)
{
	char *copy = strdup(path);
	size_t len;

	if (!copy)
		return NULL;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = 0;
	return copy;
}

char *cp_basename(const char *path)
{
	char *stripped = cp_strip_slashes(path);
	char *slash, *base;

	if (!stripped)
		return NULL;
	if (strcmp(stripped, "/") == 0) {
		stripped[0] = 0;
		return stripped;
	}
	slash = strrchr(stripped, '/');
	base = strdup(slash ? slash + 1 : stripped);
	free(stripped);
	return base;
}

int cp_reject(msb_error *err, const char *source, const char *value, const char *reason)
{
	char quoted[256];

	pathcheck_quote(value, quoted, sizeof(quoted));
	return err_set(err, -EINVAL, "refusing \"%s\" from %s: %s", quoted, source, reason);
}

int cp_prefix_error(msb_error *err, int code, const char *fmt, ...)
{
	char message[MSB_ERROR_MESSAGE_MAX];
	va_list ap;
	int n;

	if (!err)
		return code;
	memcpy(message, err->message, sizeof(message));
	va_start(ap, fmt);
	n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(err->message))
		snprintf(err->message + n, sizeof(err->message) - (size_t)n, ": %s", message);
	return code;
}

/* Stats path without following a symlink; -ENOENT when nothing is there. */
static int guest_lstat(msb_client *c, const char *path, msb_file_info *info, msb_error *err)
{
	int rc = msb_fs_stat(c, path, false, info, err);

	if (rc == -ENOENT || rc == -ENOTDIR)
		return -ENOENT;
	return rc;
}

/* Prepares path in the guest for a new file: removes a symlink or special
 * file there (the agent's open would follow or block on it) and fails
 * with -EISDIR on a directory. */
static int guest_clear_for_file(msb_client *c, const char *path, msb_error *err)
{
	msb_file_info info;
	int rc = guest_lstat(c, path, &info, err);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (strcmp(info.kind, "dir") == 0)
		return err_set(err, -EISDIR, "%s is a directory in the guest; remove it or choose another destination",
			       path);
	if (strcmp(info.kind, "file") == 0)
		return 0;
	return msb_fs_remove(c, path, false, err);
}

int cp_guest_make_dir(msb_client *c, const char *path, msb_error *err)
{
	msb_file_info info;
	int rc = guest_lstat(c, path, &info, err);

	if (rc == -ENOENT)
		return msb_fs_mkdir(c, path, 0700, err);
	if (rc < 0)
		return rc;
	if (strcmp(info.kind, "dir") != 0)
		return err_set(err, -ENOTDIR,
			       "%s exists in the guest and is not a directory; remove it or choose another destination",
			       path);
	return 0;
}

int cp_guest_make_symlink(msb_client *c, const char *target, const char *path, msb_error *err)
{
	msb_file_info info;
	int rc = guest_lstat(c, path, &info, err);

	if (rc == 0 && strcmp(info.kind, "dir") == 0)
		return err_set(err, -EISDIR, "%s is a directory in the guest; remove it or choose another destination",
			       path);
	if (rc == 0)
		rc = msb_fs_remove(c, path, false, err);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	return msb_fs_symlink(c, target, path, err);
}

/* ---- Files written through a temporary name ---- */

char *cp_partial_name(const char *name)
{
	char suffix[32];
	char *partial;
	int max_name_len;

	snprintf(suffix, sizeof(suffix), ".msb-partial-%ld", (long)getpid());
	max_name_len = NAME_MAX - 1 - (int)strlen(suffix);
	if (asprintf(&partial, ".%.*s%s", max_name_len, name, suffix) < 0)
		return NULL;
	return partial;
}

/* The temporary path in the same directory as path, which has a '/'. */
static char *partial_path(const char *path)
{
	const char *name = strrchr(path, '/') + 1;
	char *partial = cp_partial_name(name), *joined;

	if (!partial)
		return NULL;
	if (asprintf(&joined, "%.*s%s", (int)(name - path), path, partial) < 0)
		joined = NULL;
	free(partial);
	return joined;
}

static int guest_check_not_dir(msb_client *c, const char *path, msb_error *err)
{
	msb_file_info info;
	int rc = guest_lstat(c, path, &info, err);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (strcmp(info.kind, "dir") == 0)
		return err_set(err, -EISDIR, "%s is a directory in the guest; remove it or choose another destination",
			       path);
	return 0;
}

/* Fills partial from source, sets its mode and times and renames it to
 * path. Renaming replaces a symlink or special file at path itself. */
static int write_and_rename(msb_client *c, const char *partial, const char *path, const struct cp_file_attrs *attrs,
			    msb_fs_source source, void *data, msb_error *err)
{
	int rc = msb_fs_write_stream(c, partial, attrs->mode, source, data, err);

	if (rc == 0)
		rc = msb_fs_set_times_mode(c, partial, false, attrs->mode, attrs->atime, attrs->mtime, err);
	if (rc == 0)
		rc = msb_fs_rename(c, partial, path, err);
	return rc;
}

int cp_guest_write_file(msb_client *c, const char *path, const struct cp_file_attrs *attrs, msb_fs_source source,
			void *data, msb_error *err)
{
	char *partial;
	int rc = guest_check_not_dir(c, path, err);

	if (rc < 0)
		return rc;
	partial = partial_path(path);
	if (!partial)
		return err_set(err, -ENOMEM, "out of memory");
	rc = guest_clear_for_file(c, partial, err);
	if (rc == 0) {
		rc = write_and_rename(c, partial, path, attrs, source, data, err);
		/* Also frees the space of a partial file on a full disk. */
		if (rc < 0)
			msb_fs_remove(c, partial, false, NULL);
	}
	free(partial);
	if (rc < 0)
		return cp_prefix_error(err, rc, "write %s in the guest", path);
	return 0;
}

/* ---- Signals ---- */

static volatile sig_atomic_t caught_signal;

static void record_signal(int sig)
{
	caught_signal = sig;
}

void cp_catch_signals(void)
{
	static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = record_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		/* A signal ignored at start stays ignored, as in a command
		 * started with nohup or in the background of a script. */
		if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(signals[i], &sa, NULL);
	}
}

int cp_interrupted(void)
{
	return caught_signal;
}

int cp_check_interrupted(msb_error *err)
{
	int sig = caught_signal;

	if (!sig)
		return 0;
	return err_set(err, -EINTR, "interrupted by signal %d (%s)", sig, strsignal(sig));
}

void cp_exit_if_interrupted(void)
{
	int sig = caught_signal;

	if (!sig)
		return;
	cli_error("copy interrupted by signal %d (%s); no partial file was renamed into place", sig, strsignal(sig));
	exit(128 + sig);
}
