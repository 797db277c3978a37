/* bench/files: msb cp against the raw channel and against local tar.
 *
 * In one run, with a persistent sandbox (its writable layer is a disk
 * image, so guest writes go to the host's disk as a user's would):
 *   - a 512 MiB file copied in and out with `msb cp`;
 *   - the same bytes streamed over the same channel without msb cp (a
 *     libmsb file write from memory, a file read into a counter);
 *   - a tree of 10,000 small files copied in with `msb cp`;
 *   - both copied to a local directory with tar, as a reference.
 * Prints throughputs and ratios; the target for the large file is at
 * least 0.6 of the raw channel. BENCH_ROUNDS sets the rounds (default 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../src/base/files.h"
#include "bench.h"

#define BIG_MIB 512
#define TREE_DIRS 100
#define TREE_FILES_PER_DIR 100
#define TREE_FILE_BYTES 1024
#define CACHE_DIR "build/bench-cache"
#define BIG_FILE CACHE_DIR "/files-big.bin"
#define TREE_DIR CACHE_DIR "/files-tree"
#define CHUNK_BYTES (1024 * 1024)

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "bench: %s: %s\n", what, detail);
	exit(1);
}

static void fill_pattern(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 131 + seed * 7) ^ (i >> 9));
}

static void prepare(void)
{
	static unsigned char chunk[CHUNK_BYTES];
	char path[512];
	int fd;

	files_mkdir_p(TREE_DIR, 0755);
	if (access(BIG_FILE, R_OK) < 0) {
		fd = open(BIG_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create", BIG_FILE);
		for (unsigned i = 0; i < BIG_MIB; i++) {
			fill_pattern(chunk, sizeof(chunk), i);
			if (files_write_full(fd, chunk, sizeof(chunk)) < 0)
				die("write", BIG_FILE);
		}
		close(fd);
		rename(BIG_FILE ".tmp", BIG_FILE);
	}
	snprintf(path, sizeof(path), "%s/d%03d/f%03d", TREE_DIR, TREE_DIRS - 1, TREE_FILES_PER_DIR - 1);
	if (access(path, R_OK) == 0)
		return;
	for (int d = 0; d < TREE_DIRS; d++) {
		snprintf(path, sizeof(path), "%s/d%03d", TREE_DIR, d);
		files_mkdir_p(path, 0755);
		for (int f = 0; f < TREE_FILES_PER_DIR; f++) {
			snprintf(path, sizeof(path), "%s/d%03d/f%03d", TREE_DIR, d, f);
			fill_pattern(chunk, TREE_FILE_BYTES, (unsigned)(d * TREE_FILES_PER_DIR + f));
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0 || files_write_full(fd, chunk, TREE_FILE_BYTES) < 0)
				die("write", path);
			close(fd);
		}
	}
}

/* Runs argv to completion; returns its wall time in ms. */
static double timed_run(char *const argv[])
{
	double start = bench_now_ms();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("command failed", argv[0]);
	return bench_now_ms() - start;
}

static double timed_shell(const char *script)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };

	return timed_run(argv);
}

struct pattern_source {
	unsigned sent_mib;
	unsigned char *chunk;
};

static long pattern_source(void *data, void *buf, size_t cap)
{
	struct pattern_source *src = data;

	if (src->sent_mib == BIG_MIB)
		return 0;
	if (cap < CHUNK_BYTES)
		return -EINVAL;
	memcpy(buf, src->chunk, CHUNK_BYTES);
	src->sent_mib++;
	return CHUNK_BYTES;
}

static int count_sink(void *data, const void *bytes, size_t len)
{
	*(unsigned long long *)data += len;
	return 0;
}

static double raw_in_ms(msb_client *c)
{
	struct pattern_source src = { 0, malloc(CHUNK_BYTES) };
	msb_error err;
	double start;

	fill_pattern(src.chunk, CHUNK_BYTES, 1);
	start = bench_now_ms();
	if (msb_fs_write_stream(c, "/root/raw.bin", 0644, pattern_source, &src, &err) < 0)
		die("raw write", err.message);
	free(src.chunk);
	return bench_now_ms() - start;
}

static double raw_out_ms(msb_client *c)
{
	unsigned long long n = 0;
	msb_error err;
	double start = bench_now_ms();

	if (msb_fs_read_stream(c, "/root/raw.bin", count_sink, &n, &err) < 0)
		die("raw read", err.message);
	if (n != (unsigned long long)BIG_MIB << 20)
		die("raw read", "short read");
	return bench_now_ms() - start;
}

static double mib_s(double mib, double ms)
{
	return mib / (ms / 1000.0);
}

int main(int argc, char **argv)
{
	msb_sandbox_options o = { 0 };
	int rounds = bench_rounds(1);
	char msb[PATH_MAX], name[64], dest[128], script[1024];
	double raw_in = 0, raw_out = 0, cp_in = 0, cp_out = 0, cp_tree = 0, tar_big = 0, tar_tree = 0;
	double tree_mib = (double)TREE_DIRS * TREE_FILES_PER_DIR * TREE_FILE_BYTES / (1 << 20);
	msb_sandbox *sb;
	msb_client *c;
	msb_error err;

	prepare();
	if (!realpath(argc > 1 ? argv[1] : "build/msb", msb))
		die("msb binary not found", "run from the source tree or pass its path");
	snprintf(name, sizeof(name), "bench-files-%d", (int)getpid());
	o.name = name;
	o.runtime_path = msb;
	o.disk_mib = 4096;
	if (msb_sandbox_create(&o, &sb, &err) < 0 || msb_connect(name, &c, &err) < 0)
		die("sandbox", err.message);

	for (int i = 0; i < rounds; i++) {
		char *cp_in_argv[] = { msb, "cp", BIG_FILE, dest, NULL };
		char *cp_out_argv[] = { msb, "cp", dest, CACHE_DIR "/files-big.out", NULL };
		char *cp_tree_argv[] = { msb, "cp", TREE_DIR, NULL, NULL };
		char tree_dest[128];

		raw_in += raw_in_ms(c);
		raw_out += raw_out_ms(c);
		snprintf(dest, sizeof(dest), "%s:/root/big.bin", name);
		cp_in += timed_run(cp_in_argv);
		unlink(CACHE_DIR "/files-big.out");
		cp_out += timed_run(cp_out_argv);
		unlink(CACHE_DIR "/files-big.out");
		snprintf(tree_dest, sizeof(tree_dest), "%s:/root/tree%d", name, i);
		cp_tree_argv[3] = tree_dest;
		cp_tree += timed_run(cp_tree_argv);

		snprintf(script, sizeof(script),
			 "rm -rf %s/tar-dest && mkdir %s/tar-dest && tar -C %s -cf - files-big.bin | tar -C %s/tar-dest "
			 "-xf - && sync",
			 CACHE_DIR, CACHE_DIR, CACHE_DIR, CACHE_DIR);
		tar_big += timed_shell(script);
		snprintf(script, sizeof(script),
			 "rm -rf %s/tar-dest && mkdir %s/tar-dest && tar -C %s -cf - files-tree | tar -C %s/tar-dest "
			 "-xf - && sync && rm -rf %s/tar-dest",
			 CACHE_DIR, CACHE_DIR, CACHE_DIR, CACHE_DIR, CACHE_DIR);
		tar_tree += timed_shell(script);
	}

	printf("files benchmark: %d round(s); %d MiB file; %d files of %d bytes\n", rounds, BIG_MIB,
	       TREE_DIRS * TREE_FILES_PER_DIR, TREE_FILE_BYTES);
	printf("raw channel in:  %.1f MiB/s   raw channel out: %.1f MiB/s\n", mib_s(BIG_MIB * rounds, raw_in),
	       mib_s(BIG_MIB * rounds, raw_out));
	printf("msb cp in:       %.1f MiB/s   msb cp out:      %.1f MiB/s\n", mib_s(BIG_MIB * rounds, cp_in),
	       mib_s(BIG_MIB * rounds, cp_out));
	printf("local tar:       %.1f MiB/s (large file)\n", mib_s(BIG_MIB * rounds, tar_big));
	printf("large file ratio, msb cp / raw channel: in %.2f, out %.2f (target >= 0.6)\n", raw_in / cp_in,
	       raw_out / cp_out);
	printf("large file ratio, msb cp / local tar:   in %.2f, out %.2f\n", tar_big / cp_in, tar_big / cp_out);
	printf("small files in: msb cp %.0f ms (%.0f files/s), local tar %.0f ms; ratio %.3f; raw channel "
	       "for the same bytes %.0f ms\n",
	       cp_tree / rounds, TREE_DIRS * TREE_FILES_PER_DIR * rounds / (cp_tree / 1000.0), tar_tree / rounds,
	       tar_tree / cp_tree, raw_in / rounds * tree_mib / BIG_MIB);

	msb_disconnect(c);
	msb_sandbox_stop(sb, 10, NULL);
	msb_sandbox_remove(sb, true, NULL);
	msb_sandbox_free(sb);
	return 0;
}
