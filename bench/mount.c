/* bench/mount: reading a file on a shared host directory (virtio-fs)
 * against reading the same file from the root image (virtio-blk, EROFS).
 *
 * The benchmark builds a root image once (the default image plus a
 * 256 MiB file; cached in build/bench-cache/) and puts the same file in a
 * host directory shared read-only. The guest drops its page cache before
 * each read, so both reads go to their device. Prints both throughputs
 * and the ratio. BENCH_ROUNDS sets the rounds (default 3).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../src/base/files.h"
#include "../src/base/home.h"
#include "bench.h"

#define FILE_MIB 256
#define CACHE_DIR "build/bench-cache"
#define IMAGE CACHE_DIR "/mount-bench.erofs"
#define SHARE_DIR CACHE_DIR "/mount-share"

static int run(const char *cmd)
{
	int status = system(cmd);

	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A file of FILE_MIB pseudo-random MiB, the same on every call. */
static int write_data(const char *path)
{
	unsigned long long x = 88172645463325252ull;
	unsigned long long block[8192];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	for (int mib = 0; mib < FILE_MIB * 16; mib++) {
		for (size_t i = 0; i < sizeof(block) / sizeof(block[0]); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			block[i] = x;
		}
		if (files_write_full(fd, block, sizeof(block)) < 0) {
			close(fd);
			return -EIO;
		}
	}
	return close(fd) < 0 ? -errno : 0;
}

static void prepare(void)
{
	char cmd[8192], image[4096];

	files_mkdir_p(SHARE_DIR, 0755);
	if (access(SHARE_DIR "/data.bin", R_OK) < 0 && write_data(SHARE_DIR "/data.bin") < 0) {
		fprintf(stderr, "bench: cannot write " SHARE_DIR "/data.bin\n");
		exit(1);
	}
	if (access(IMAGE, R_OK) == 0)
		return;
	home_path(image, sizeof(image), "cache/images/default.erofs");
	printf("building %s from %s (once)\n", IMAGE, image);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd),
		 "set -e; t=$(mktemp -d); fsck.erofs --extract=$t/root %s >/dev/null; mkdir -p $t/root/bench; "
		 "cp %s/data.bin $t/root/bench/; mkfs.erofs --quiet %s.tmp $t/root >/dev/null; mv %s.tmp %s; "
		 "rm -rf $t",
		 image, SHARE_DIR, IMAGE, IMAGE, IMAGE);
	if (run(cmd) != 0) {
		fprintf(stderr, "bench: building the benchmark image failed (needs erofs-utils)\n");
		exit(1);
	}
}

/* Reads path in the guest with a cold page cache; returns MiB/s. */
static double read_mib_s(msb_client *c, const char *path)
{
	const char *drop[] = { "-c", "sync; echo 3 > /proc/sys/vm/drop_caches", NULL };
	const char *cat[] = { "-c", NULL, NULL };
	char script[256];
	msb_output out;
	msb_error err;
	double start;

	if (msb_exec_collect(c, "sh", drop, NULL, &out, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		exit(1);
	}
	msb_output_free(&out);
	snprintf(script, sizeof(script), "cat %s > /dev/null", path);
	cat[1] = script;
	start = bench_now_ms();
	if (msb_exec_collect(c, "sh", cat, NULL, &out, &err) < 0 || out.status.exit_code != 0) {
		fprintf(stderr, "bench: read %s failed: %s%s\n", path, err.message, out.stderr_data);
		exit(1);
	}
	msb_output_free(&out);
	return FILE_MIB / ((bench_now_ms() - start) / 1000.0);
}

int main(int argc, char **argv)
{
	char share[4200], msb[PATH_MAX];
	const char *mounts[] = { share, NULL };
	int rounds = bench_rounds(3);
	double *image = calloc((size_t)rounds, sizeof(double));
	double *shared = calloc((size_t)rounds, sizeof(double));
	double image_median, shared_median;
	msb_sandbox_options o = { .memory_mib = 512, .ephemeral = true, .mounts = mounts, .image = IMAGE };
	char name[64], share_abs[PATH_MAX];
	msb_sandbox *sb;
	msb_client *c;
	msb_error err;

	prepare();
	if (!realpath(argc > 1 ? argv[1] : "build/msb", msb) || !realpath(SHARE_DIR, share_abs)) {
		fprintf(stderr, "bench: run from the source tree or pass the msb path\n");
		return 1;
	}
	snprintf(share, sizeof(share), "%s:/share:ro", share_abs);
	snprintf(name, sizeof(name), "bench-mount-%d", (int)getpid());
	o.name = name;
	o.runtime_path = msb;
	if (msb_sandbox_create(&o, &sb, &err) < 0 || msb_connect(name, &c, &err) < 0) {
		fprintf(stderr, "bench: %s\n", err.message);
		return 1;
	}
	for (int i = 0; i < rounds; i++) {
		image[i] = read_mib_s(c, "/bench/data.bin");
		shared[i] = read_mib_s(c, "/share/data.bin");
	}
	image_median = bench_median(image, rounds);
	shared_median = bench_median(shared, rounds);
	printf("mount benchmark: %d MiB file, %d rounds, cold guest page cache\n", FILE_MIB, rounds);
	printf("read from the root image (virtio-blk):  median %.1f MiB/s\n", image_median);
	printf("read from a shared directory (virtio-fs): median %.1f MiB/s\n", shared_median);
	printf("mount ratio, shared directory / root image: %.2f\n", shared_median / image_median);
	msb_disconnect(c);
	msb_sandbox_stop(sb, 10, NULL);
	msb_sandbox_free(sb);
	return 0;
}
