/* Guest assets lookup and initramfs composition. */
#include "assets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"
#include "../base/home.h"
#include "cpio.h"

extern const unsigned char msb_agent_blob[];
extern const unsigned char msb_agent_blob_end[];

#define SETUP_HINT "run `make setup` in the msb source tree to install the guest assets"
/* Directories the agent mounts on or creates in the initramfs. */
static const char *const initramfs_dirs[] = { "dev", "proc", "sys", "modules", "lower", "upper", "newroot" };

static int read_line(const char *path, char *out, size_t out_len)
{
	char *data;
	int rc = files_read_all(path, 4096, &data, NULL);

	if (rc < 0)
		return rc;
	data[strcspn(data, "\r\n")] = 0;
	snprintf(out, out_len, "%s", data);
	free(data);
	return 0;
}

int assets_find(struct guest_assets *a, const char *image, msb_error *err)
{
	char current[PATH_MAX];
	int rc;

	memset(a, 0, sizeof(*a));
	home_path(current, sizeof(current), "cache/kernel/current");
	rc = read_line(current, a->kernel_version, sizeof(a->kernel_version));
	if (rc < 0)
		return err_set(err, -ENOENT, "guest kernel not installed (%s is missing); " SETUP_HINT, current);

	home_path(a->kernel, sizeof(a->kernel), "cache/kernel/%s/vmlinux", a->kernel_version);
	home_path(a->modules_dir, sizeof(a->modules_dir), "cache/kernel/%s/modules", a->kernel_version);
	if (access(a->kernel, R_OK) < 0)
		return err_sys(err, -errno, "guest kernel %s; " SETUP_HINT, a->kernel);
	if (access(a->modules_dir, R_OK) < 0)
		return err_sys(err, -errno, "guest kernel modules %s; " SETUP_HINT, a->modules_dir);

	if (image) {
		if (!realpath(image, a->root_image))
			return err_sys(err, -errno, "root image %s", image);
	} else {
		home_path(a->root_image, sizeof(a->root_image), "cache/images/default.erofs");
	}
	if (access(a->root_image, R_OK) < 0)
		return err_sys(err, -errno, "root image %s%s", a->root_image, image ? "" : "; " SETUP_HINT);
	return 0;
}

/* FNV-1a, 64 bits: names the composed initramfs after what it contains. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static int list_modules(const char *dir, char ***names, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, cap = 0;
	char **list = NULL;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len < 4 || (strcmp(e->d_name + len - 3, ".ko") != 0 && (len < 7 || strcmp(e->d_name + len - 6, ".order") != 0)))
			continue;
		if (n == cap) {
			char **bigger = realloc(list, (cap = cap ? cap * 2 : 32) * sizeof(*list));

			if (!bigger)
				break;
			list = bigger;
		}
		list[n] = strdup(e->d_name);
		if (list[n])
			n++;
	}
	closedir(d);
	*names = list;
	*count = n;
	return 0;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int write_initramfs(const char *path, const char *modules_dir, char **names, size_t n, msb_error *err)
{
	struct cpio_writer w;
	char tmp[PATH_MAX + 16];
	int rc;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	rc = cpio_open(&w, tmp);
	if (rc < 0)
		return err_sys(err, rc, "create initramfs %s", tmp);

	for (size_t i = 0; rc == 0 && i < sizeof(initramfs_dirs) / sizeof(initramfs_dirs[0]); i++)
		rc = cpio_add_dir(&w, initramfs_dirs[i], 0755);
	if (rc == 0)
		rc = cpio_add_char_device(&w, "dev/console", 0600, 5, 1);
	if (rc == 0)
		rc = cpio_add_file_data(&w, "init", 0755, msb_agent_blob, (size_t)(msb_agent_blob_end - msb_agent_blob));
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char src[PATH_MAX + 256], dst[300];

		snprintf(src, sizeof(src), "%s/%s", modules_dir, names[i]);
		snprintf(dst, sizeof(dst), "modules/%s", names[i]);
		rc = cpio_add_file(&w, dst, 0644, src);
	}
	if (rc == 0)
		rc = cpio_finish(&w);
	else
		cpio_abort(&w);

	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return err_sys(err, rc, "compose initramfs %s", path);
	}
	return 0;
}

/* Each agent or kernel change composes a new initramfs; the old ones are
 * of no further use (QEMU reads the file only when it starts). */
static void remove_other_initramfs(const char *dir, const char *keep)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[PATH_MAX + 256];
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 5, ".cpio") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (strcmp(path, keep) != 0)
			unlink(path);
	}
	if (d)
		closedir(d);
}

int assets_prepare_initramfs(struct guest_assets *a, msb_error *err)
{
	size_t agent_len = (size_t)(msb_agent_blob_end - msb_agent_blob);
	char dir[PATH_MAX], **names = NULL;
	uint64_t h = 0xcbf29ce484222325ull;
	size_t n = 0;
	int rc;

	rc = list_modules(a->modules_dir, &names, &n);
	if (rc < 0)
		return err_sys(err, rc, "list guest modules in %s", a->modules_dir);
	qsort(names, n, sizeof(*names), compare_names);

	h = fnv1a(h, msb_agent_blob, agent_len);
	h = fnv1a(h, a->kernel_version, strlen(a->kernel_version));
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX + 256];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", a->modules_dir, names[i]);
		h = fnv1a(h, names[i], strlen(names[i]) + 1);
		if (stat(path, &st) == 0)
			h = fnv1a(h, &st.st_size, sizeof(st.st_size));
	}

	home_path(dir, sizeof(dir), "cache/initramfs");
	home_path(a->initramfs, sizeof(a->initramfs), "cache/initramfs/%016llx.cpio", (unsigned long long)h);
	if (access(a->initramfs, R_OK) == 0) {
		free_names(names, n);
		return 0;
	}
	rc = files_mkdir_p(dir, 0755);
	if (rc < 0) {
		free_names(names, n);
		return err_sys(err, rc, "create %s", dir);
	}
	rc = write_initramfs(a->initramfs, a->modules_dir, names, n, err);
	free_names(names, n);
	if (rc == 0)
		remove_other_initramfs(dir, a->initramfs);
	return rc;
}
