/* msb cp: path helpers and guest-side preparation of destinations. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/err.h"
#include "../base/pathcheck.h"
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

int cp_guest_clear_for_file(msb_client *c, const char *path, msb_error *err)
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
