/* PID 1 duties: mount the basics, load kernel modules, join the root image
 * and a writable upper with overlayfs, move into it, find the agent port.
 *
 * The initramfs contains this binary as /init and the modules it may need in
 * /modules, with one file per group (/modules/GROUP.order) that lists the
 * group's modules in load order, dependencies first.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MODULES_DIR "/modules"
/* How long to wait for a device node or the agent port to appear after its
 * driver loaded. Probing is synchronous in practice; this covers slow TCG. */
#define DEVICE_WAIT_MS 5000
#define DEVICE_POLL_US 2000

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	nanosleep(&ts, NULL);
}

static int mount_fs(const char *source, const char *target, const char *type, unsigned long flags,
		    const char *data)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST) {
		agent_error("mkdir %s: %s", target, strerror(errno));
		return -errno;
	}
	if (mount(source, target, type, flags, data) < 0) {
		int err = errno;

		agent_error("mount %s (%s) on %s: %s", source, type, target, strerror(err));
		return -err;
	}
	return 0;
}

int init_early_mounts(void)
{
	int rc;

	rc = mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	if (rc < 0 && rc != -EBUSY)
		return rc;
	rc = mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (rc < 0)
		return rc;
	return mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static int load_module(const char *name)
{
	char path[256];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", MODULES_DIR, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		agent_error("open module %s: %s", path, strerror(errno));
		return -errno;
	}
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) {
		rc = -errno;
		agent_error("load module %s: %s", name, strerror(errno));
	}
	close(fd);
	return rc;
}

int init_load_modules(const char *group)
{
	char path[256], line[256];
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s.order", MODULES_DIR, group);
	f = fopen(path, "re");
	if (!f) {
		agent_error("open module list %s: %s", path, strerror(errno));
		return -errno;
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (line[0] && line[0] != '#')
			rc = load_module(line);
	}
	fclose(f);
	return rc;
}

static int wait_for_path(const char *path)
{
	for (long waited = 0; waited < DEVICE_WAIT_MS * 1000L; waited += DEVICE_POLL_US) {
		if (access(path, F_OK) == 0)
			return 0;
		sleep_us(DEVICE_POLL_US);
	}
	agent_error("%s did not appear within %d ms", path, DEVICE_WAIT_MS);
	return -ENODEV;
}

/* Looks up key in a "k=v,k=v" list; copies the value into out. */
static bool spec_get(const char *spec, const char *key, char *out, size_t out_len)
{
	size_t key_len = strlen(key);
	const char *p = spec;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t item_len = end ? (size_t)(end - p) : strlen(p);

		if (item_len > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
			size_t n = item_len - key_len - 1;

			if (n >= out_len)
				return false;
			memcpy(out, p + key_len + 1, n);
			out[n] = 0;
			return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* The root spec has two forms:
 *   kind=disk-image,device=/dev/vda[,fstype=erofs]
 *       the image is the read-only lower; the upper is a tmpfs, so writes
 *       last until the VM stops;
 *   kind=oci-erofs,lower=/dev/vda,upper=/dev/vdb[,upper_fstype=ext4]
 *       the upper is a block device, so writes survive a restart. */
struct root_spec {
	char lower[64];
	char lower_fstype[16];
	char upper[64]; /* empty for a tmpfs upper */
	char upper_fstype[16];
};

static int parse_root_spec(const char *spec, struct root_spec *rs)
{
	char kind[32];

	memset(rs, 0, sizeof(*rs));
	strcpy(rs->lower_fstype, "erofs");
	strcpy(rs->upper_fstype, "ext4");

	if (!spec_get(spec, "kind", kind, sizeof(kind))) {
		agent_error("MSB_BLOCK_ROOT has no kind: %s", spec);
		return -EINVAL;
	}
	if (strcmp(kind, "disk-image") == 0) {
		if (!spec_get(spec, "device", rs->lower, sizeof(rs->lower)))
			goto missing;
		spec_get(spec, "fstype", rs->lower_fstype, sizeof(rs->lower_fstype));
		return 0;
	}
	if (strcmp(kind, "oci-erofs") == 0) {
		if (!spec_get(spec, "lower", rs->lower, sizeof(rs->lower)) ||
		    !spec_get(spec, "upper", rs->upper, sizeof(rs->upper)))
			goto missing;
		spec_get(spec, "upper_fstype", rs->upper_fstype, sizeof(rs->upper_fstype));
		return 0;
	}
	agent_error("MSB_BLOCK_ROOT kind %s is not supported", kind);
	return -EINVAL;

missing:
	agent_error("MSB_BLOCK_ROOT lacks a device: %s", spec);
	return -EINVAL;
}

/* Moves the mount at old_path into new_root, where it keeps serving the
 * processes that run there. */
static int move_mount(const char *old_path, const char *new_root)
{
	char target[128];

	snprintf(target, sizeof(target), "%s%s", new_root, old_path);
	mkdir(target, 0755);
	if (mount(old_path, target, NULL, MS_MOVE, NULL) < 0) {
		agent_error("move %s to %s: %s", old_path, target, strerror(errno));
		return -errno;
	}
	return 0;
}

int init_mount_root(const char *block_root_spec)
{
	struct root_spec rs;
	char options[256];
	int rc;

	rc = parse_root_spec(block_root_spec, &rs);
	if (rc < 0)
		return rc;

	rc = wait_for_path(rs.lower);
	if (rc == 0)
		rc = mount_fs(rs.lower, "/lower", rs.lower_fstype, MS_RDONLY, NULL);
	if (rc < 0)
		return rc;

	if (rs.upper[0]) {
		rc = wait_for_path(rs.upper);
		if (rc == 0)
			rc = mount_fs(rs.upper, "/upper", rs.upper_fstype, MS_NOATIME, NULL);
	} else {
		rc = mount_fs("tmpfs", "/upper", "tmpfs", 0, "mode=0755");
	}
	if (rc < 0)
		return rc;
	mkdir("/upper/upper", 0755);
	mkdir("/upper/work", 0755);

	snprintf(options, sizeof(options), "lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work");
	rc = mount_fs("overlay", "/newroot", "overlay", 0, options);
	if (rc < 0)
		return rc;

	rc = move_mount("/dev", "/newroot");
	if (rc == 0)
		rc = move_mount("/proc", "/newroot");
	if (rc == 0)
		rc = move_mount("/sys", "/newroot");
	if (rc < 0)
		return rc;

	/* The initramfs is the rootfs and cannot be unmounted or pivoted
	 * away; moving the new root over "/" and chrooting into it is the
	 * standard way out (switch_root does the same). The initramfs stays
	 * in memory underneath: a few MiB of modules that may load later. */
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0) {
		agent_error("switch to the new root: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void bring_loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			agent_error("bring lo up: %s", strerror(errno));
	}
	close(fd);
}

int init_finish_root(const char *hostname)
{
	static const struct {
		const char *link, *target;
	} dev_links[] = {
		{ "/dev/fd", "/proc/self/fd" },
		{ "/dev/stdin", "/proc/self/fd/0" },
		{ "/dev/stdout", "/proc/self/fd/1" },
		{ "/dev/stderr", "/proc/self/fd/2" },
		{ "/dev/ptmx", "pts/ptmx" },
	};
	int rc;

	rc = mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	if (rc == 0)
		rc = mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	if (rc == 0)
		rc = mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	if (rc < 0)
		return rc;

	for (size_t i = 0; i < sizeof(dev_links) / sizeof(dev_links[0]); i++) {
		if (strcmp(dev_links[i].link, "/dev/ptmx") == 0)
			unlink(dev_links[i].link);
		if (symlink(dev_links[i].target, dev_links[i].link) < 0 && errno != EEXIST)
			agent_error("symlink %s: %s", dev_links[i].link, strerror(errno));
	}

	if (sethostname(hostname, strlen(hostname)) < 0)
		agent_error("set hostname %s: %s", hostname, strerror(errno));
	bring_loopback_up();
	return 0;
}

/* Finds the port whose sysfs name is name; fills dev with its /dev path. */
static bool find_port(const char *name, char *dev, size_t dev_len)
{
	DIR *dir = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	bool found = false;

	if (!dir)
		return false;
	while (!found && (e = readdir(dir))) {
		char path[300], port_name[64];
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(port_name, sizeof(port_name), f)) {
			port_name[strcspn(port_name, "\n")] = 0;
			if (strcmp(port_name, name) == 0) {
				snprintf(dev, dev_len, "/dev/%s", e->d_name);
				found = true;
			}
		}
		fclose(f);
	}
	closedir(dir);
	return found;
}

int init_open_port(const char *name)
{
	char dev[300];
	int fd;

	for (long waited = 0;; waited += DEVICE_POLL_US) {
		if (find_port(name, dev, sizeof(dev)))
			break;
		if (waited >= DEVICE_WAIT_MS * 1000L) {
			agent_error("no virtio-console port named %s appeared within %d ms", name, DEVICE_WAIT_MS);
			return -ENODEV;
		}
		sleep_us(DEVICE_POLL_US);
	}
	if (wait_for_path(dev) < 0)
		return -ENODEV;
	fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		agent_error("open agent port %s: %s", dev, strerror(errno));
		return -errno;
	}
	return fd;
}

void init_power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	/* Without ACPI power-off, a reboot ends QEMU, which runs with
	 * -no-reboot. */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

/* ---- Mounts from the host ---- */

#define SHARES_TAG "msb_shares"
#define SHARES_DIR "/run/msb/shares"

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes a percent-encoded path of at most len bytes from in. */
static bool decode_path(const char *in, size_t in_len, char *out, size_t out_len)
{
	size_t n = 0;

	for (size_t i = 0; i < in_len; i++) {
		char c = in[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= in_len)
				return false;
			hi = hex_digit(in[i + 1]);
			lo = hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == 0 || n + 1 >= out_len)
			return false;
		out[n++] = c;
	}
	out[n] = 0;
	return n > 0 && out[0] == '/';
}

static int mkdir_parents_of(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int bind_share(const char *source, const char *target, bool read_only, bool is_file)
{
	int rc = mkdir_parents_of(target);

	if (rc == 0 && is_file) {
		int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0 && errno != EISDIR)
			rc = -errno;
		if (fd >= 0)
			close(fd);
	} else if (rc == 0 && mkdir(target, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
	}
	if (rc < 0) {
		agent_error("create mount point %s: %s", target, strerror(-rc));
		return rc;
	}
	if (mount(source, target, NULL, MS_BIND, NULL) < 0) {
		agent_error("bind %s on %s: %s", source, target, strerror(errno));
		return -errno;
	}
	/* The host enforces read-only shares; the guest flag gives clean
	 * EROFS errors. */
	if (read_only && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		agent_error("make %s read-only: %s", target, strerror(errno));
	return 0;
}

int init_mount_shares(const char *spec)
{
	const char *item = spec;
	int rc;

	rc = mkdir_parents_of(SHARES_DIR "/x");
	if (rc == 0)
		rc = mount_fs(SHARES_TAG, SHARES_DIR, "virtiofs", MS_NOSUID | MS_NODEV, NULL);
	if (rc < 0)
		return rc;

	/* INDEX:PATH[:ro][:file];... */
	while (item && *item) {
		const char *end = strchr(item, ';');
		size_t len = end ? (size_t)(end - item) : strlen(item);
		char entry[PATH_MAX * 3], target[PATH_MAX], source[64];
		char *index_end, *path, *flags;
		unsigned long index;

		if (len >= sizeof(entry))
			return -ENAMETOOLONG;
		memcpy(entry, item, len);
		entry[len] = 0;
		index = strtoul(entry, &index_end, 10);
		if (*index_end != ':') {
			agent_error("MSB_SHARES entry \"%s\" is malformed", entry);
			return -EINVAL;
		}
		path = index_end + 1;
		flags = strchr(path, ':');
		if (!decode_path(path, flags ? (size_t)(flags - path) : strlen(path), target, sizeof(target))) {
			agent_error("MSB_SHARES path \"%s\" is not a valid absolute path", path);
			return -EINVAL;
		}
		snprintf(source, sizeof(source), SHARES_DIR "/%lu", index);
		rc = bind_share(source, target, flags && strstr(flags, ":ro"), flags && strstr(flags, ":file"));
		if (rc < 0)
			return rc;
		item = end ? end + 1 : NULL;
	}
	return 0;
}

int init_mount_tmpfs(const char *spec)
{
	const char *item = spec;

	/* PATH:size=MIB;... */
	while (item && *item) {
		const char *end = strchr(item, ';');
		size_t len = end ? (size_t)(end - item) : strlen(item);
		const char *colon = memchr(item, ':', len);
		char target[PATH_MAX], options[64];
		unsigned long size_mib = 64;
		int rc;

		if (colon && strncmp(colon, ":size=", 6) == 0)
			size_mib = strtoul(colon + 6, NULL, 10);
		if (!decode_path(item, colon ? (size_t)(colon - item) : len, target, sizeof(target))) {
			agent_error("MSB_TMPFS entry \"%.*s\" is malformed", (int)len, item);
			return -EINVAL;
		}
		snprintf(options, sizeof(options), "size=%lum,mode=1777", size_mib);
		rc = mkdir_parents_of(target);
		if (rc == 0)
			rc = mount_fs("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options);
		if (rc < 0)
			return rc;
		item = end ? end + 1 : NULL;
	}
	return 0;
}
