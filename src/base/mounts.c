/* Mount specifications and named volumes. */
#include "mounts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "files.h"
#include "home.h"

static const char *const kind_names[] = { "dir", "file", "tmpfs" };

/* Tabs and newlines separate the stored form; paths cannot hold them. */
static int check_path(const char *path, const char *what, msb_error *err)
{
	if (strpbrk(path, "\t\n\r"))
		return err_set(err, -EINVAL, "%s \"%s\" contains a tab or newline, which mounts cannot carry", what,
			       path);
	return 0;
}

/* Guest directories the agent itself mounts; a share over them would hide
 * what the guest needs to run. */
static const char *const reserved_guest_dirs[] = { "/proc", "/sys", "/dev", "/run/msb" };

static bool is_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == 0 || path[n] == '/');
}

static int check_guest(const char *guest, const char *arg, msb_error *err)
{
	if (guest[0] != '/')
		return err_set(err, -EINVAL, "invalid mount \"%s\": the guest path must be absolute", arg);
	if (strcmp(guest, "/") == 0)
		return err_set(err, -EINVAL, "invalid mount \"%s\": cannot mount over the guest's root", arg);
	for (size_t i = 0; i < sizeof(reserved_guest_dirs) / sizeof(reserved_guest_dirs[0]); i++)
		if (is_under(guest, reserved_guest_dirs[i]))
			return err_set(err, -EINVAL, "invalid mount \"%s\": %s belongs to the guest system", arg,
				       reserved_guest_dirs[i]);
	return check_path(guest, "guest path", err);
}

int mounts_check_distinct(const struct mount_spec *m, size_t n, msb_error *err)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(m[i].guest, m[j].guest) == 0)
				return err_set(err, -EINVAL, "two mounts at %s in the guest; give each its own path",
					       m[i].guest);
	return 0;
}

int volumes_path(const char *name, char *out, size_t len, msb_error *err)
{
	int rc = home_check_name(name, NULL);

	if (rc < 0)
		return err_set(err, -EINVAL,
			       "invalid volume name \"%s\": use 1 to %d letters, digits, '_', '-', '.'; a host path "
			       "must contain '/'",
			       name, HOME_NAME_MAX);
	return home_path(out, len, "volumes/%s", name);
}

int volumes_create(const char *name, msb_error *err)
{
	char path[PATH_MAX];
	int rc = volumes_path(name, path, sizeof(path), err);

	if (rc < 0)
		return rc;
	rc = files_mkdir_p(path, 0755);
	return rc < 0 ? err_sys(err, rc, "create volume %s", path) : 0;
}

int volumes_remove(const char *name, msb_error *err)
{
	char path[PATH_MAX];
	int rc = volumes_path(name, path, sizeof(path), err);

	if (rc < 0)
		return rc;
	if (access(path, F_OK) < 0)
		return err_set(err, -ENOENT, "no volume named %s", name);
	rc = files_remove_tree(path);
	return rc < 0 ? err_sys(err, rc, "remove volume %s", path) : 0;
}

int mounts_parse_volume(const char *arg, struct mount_spec *out, msb_error *err)
{
	char source[PATH_MAX], guest[PATH_MAX], options[16] = "";
	const char *first = strchr(arg, ':'), *second;
	struct stat st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!first || first == arg)
		return err_set(err, -EINVAL, "invalid mount \"%s\": expected HOST_PATH:GUEST_PATH[:ro]", arg);
	second = strchr(first + 1, ':');
	snprintf(source, sizeof(source), "%.*s", (int)(first - arg), arg);
	snprintf(guest, sizeof(guest), "%.*s", second ? (int)(second - first - 1) : (int)strlen(first + 1),
		 first + 1);
	if (second)
		snprintf(options, sizeof(options), "%s", second + 1);
	if (options[0] && strcmp(options, "ro") != 0 && strcmp(options, "rw") != 0)
		return err_set(err, -EINVAL, "invalid mount \"%s\": unknown option \"%s\" (use ro or rw)", arg,
			       options);
	out->read_only = strcmp(options, "ro") == 0;
	rc = check_guest(guest, arg, err);
	if (rc < 0)
		return rc;
	snprintf(out->guest, sizeof(out->guest), "%s", guest);

	if (!strchr(source, '/') && strcmp(source, ".") != 0 && strcmp(source, "..") != 0) {
		/* A named volume; but a file or directory of that name here was
		 * most likely meant. */
		if (access(source, F_OK) == 0)
			return err_set(err, -EINVAL,
				       "\"%s\" in \"%s\" names a volume, and a file of that name is here; write ./%s "
				       "to share the file",
				       source, arg, source);
		rc = volumes_create(source, err);
		if (rc == 0)
			rc = volumes_path(source, out->source, sizeof(out->source), err);
		out->kind = MOUNT_DIR;
		return rc;
	}
	if (!realpath(source, out->source))
		return err_sys(err, -errno, "mount source %s", source);
	if (stat(out->source, &st) < 0)
		return err_sys(err, -errno, "mount source %s", out->source);
	if (S_ISDIR(st.st_mode))
		out->kind = MOUNT_DIR;
	else if (S_ISREG(st.st_mode))
		out->kind = MOUNT_FILE;
	else
		return err_set(err, -EINVAL, "mount source %s is neither a directory nor a regular file", out->source);
	if (access(out->source, R_OK) < 0)
		return err_sys(err, -errno, "mount source %s", out->source);
	return check_path(out->source, "mount source", err);
}

int mounts_parse_tmpfs(const char *arg, struct mount_spec *out, msb_error *err)
{
	const char *colon = strchr(arg, ':');
	char guest[PATH_MAX];
	int rc;

	memset(out, 0, sizeof(*out));
	out->kind = MOUNT_TMPFS;
	out->size_mib = MOUNT_DEFAULT_TMPFS_MIB;
	snprintf(guest, sizeof(guest), "%.*s", colon ? (int)(colon - arg) : (int)strlen(arg), arg);
	if (colon) {
		char *end;
		unsigned long size;

		if (strncmp(colon + 1, "size=", 5) != 0)
			return err_set(err, -EINVAL, "invalid --tmpfs \"%s\": expected GUEST_PATH[:size=MIB]", arg);
		errno = 0;
		size = strtoul(colon + 6, &end, 10);
		if (errno || *end || end == colon + 6 || size == 0 || size > 1024 * 1024)
			return err_set(err, -EINVAL, "invalid --tmpfs size in \"%s\": expected MiB from 1 to 1048576",
				       arg);
		out->size_mib = (unsigned)size;
	}
	rc = check_guest(guest, arg, err);
	if (rc == 0)
		snprintf(out->guest, sizeof(out->guest), "%s", guest);
	return rc;
}

int mounts_serialize(const struct mount_spec *m, size_t n, char **out, msb_error *err)
{
	size_t cap = n * (2 * PATH_MAX + 64) + 1, len = 0;
	char *text = malloc(cap);

	if (!text)
		return err_set(err, -ENOMEM, "out of memory");
	text[0] = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%s\t%s\t%s\t%s\t%u\n", kind_names[m[i].kind],
					m[i].source, m[i].guest, m[i].read_only ? "ro" : "rw", m[i].size_mib);
	*out = text;
	return 0;
}

int mounts_deserialize(const char *text, struct mount_spec *m, size_t max, size_t *n, msb_error *err)
{
	const char *line = text;

	*n = 0;
	while (line && *line) {
		const char *end = strchr(line, '\n');
		char kind[8], access_mode[4];
		struct mount_spec *spec = &m[*n];
		char fmt[64];
		int k;

		if (*n == max)
			return err_set(err, -E2BIG, "more than %zu mounts", max);
		memset(spec, 0, sizeof(*spec));
		snprintf(fmt, sizeof(fmt), "%%7[^\t]\t%%%d[^\t]\t%%%d[^\t]\t%%3[^\t]\t%%u", PATH_MAX - 1, PATH_MAX - 1);
		/* An empty source (tmpfs) leaves two tabs in a row. */
		if (strncmp(line, "tmpfs\t\t", 7) == 0) {
			snprintf(fmt, sizeof(fmt), "%%7[^\t]\t\t%%%d[^\t]\t%%3[^\t]\t%%u", PATH_MAX - 1);
			k = sscanf(line, fmt, kind, spec->guest, access_mode, &spec->size_mib) + 1;
		} else {
			k = sscanf(line, fmt, kind, spec->source, spec->guest, access_mode, &spec->size_mib);
		}
		if (k != 5)
			return err_set(err, -EINVAL, "malformed mount entry in the index: %.80s", line);
		for (int i = 0; i < 3; i++)
			if (strcmp(kind, kind_names[i]) == 0)
				spec->kind = (enum mount_kind)i;
		spec->read_only = strcmp(access_mode, "ro") == 0;
		(*n)++;
		line = end ? end + 1 : NULL;
	}
	return 0;
}
