/* msb logs: a sandbox's runtime, kernel or exec log, optionally followed. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* How often a followed log is checked for new lines. */
#define FOLLOW_POLL_MS 200

static const char logs_usage[] =
	"usage: msb logs [--source runtime|kernel|exec] [-f] NAME\n"
	"\n"
	"Prints a log of the sandbox NAME:\n"
	"  runtime  the sandbox process: boot, clients, policies, stop (default)\n"
	"  kernel   the guest's serial console\n"
	"  exec     every exec's output as JSON lines\n"
	"-f, --follow keeps printing what is added until interrupted.\n";

static int copy_from(int fd, off_t *offset)
{
	char chunk[65536];
	ssize_t n;

	while ((n = pread(fd, chunk, sizeof(chunk), *offset)) > 0) {
		if (fwrite(chunk, 1, (size_t)n, stdout) != (size_t)n)
			return -EPIPE;
		*offset += n;
	}
	fflush(stdout);
	return n < 0 ? -errno : 0;
}

/* Prints path, then with follow keeps printing what is appended; a
 * rotation (the file replaced by a new one) starts over at the new file. */
static int show(const char *path, bool follow)
{
	struct timespec pause = { 0, FOLLOW_POLL_MS * 1000000L };
	off_t offset = 0;
	struct stat st, now;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fstat(fd, &st);
	for (;;) {
		int rc = copy_from(fd, &offset);

		if (rc < 0 || !follow)
			break;
		nanosleep(&pause, NULL);
		if (stat(path, &now) == 0 && now.st_ino != st.st_ino) {
			copy_from(fd, &offset);
			close(fd);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			fstat(fd, &st);
			offset = 0;
		}
	}
	close(fd);
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "source", required_argument, NULL, 's' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *source = "runtime";
	msb_sandbox_info info;
	msb_sandbox *sb;
	msb_error err;
	char path[PATH_MAX + 32];
	bool follow = false;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:fh", long_options, NULL)) != -1) {
		switch (c) {
		case 's':
			source = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'h':
			fputs(logs_usage, stdout);
			return 0;
		default:
			fputs(logs_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(logs_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(source, "runtime") != 0 && strcmp(source, "kernel") != 0 && strcmp(source, "exec") != 0) {
		cli_error("unknown log source \"%s\": use runtime, kernel or exec", source);
		return CLI_EXIT_USAGE;
	}
	if (msb_sandbox_open(argv[optind], &sb, &err) < 0 || msb_sandbox_get_info(sb, &info, &err) < 0) {
		cli_error("%s", err.message);
		return CLI_EXIT_ERROR;
	}
	msb_sandbox_free(sb);

	snprintf(path, sizeof(path), "%s/%s.log", info.dir, source);
	rc = show(path, follow);
	if (rc == -ENOENT) {
		cli_error("%s has no %s log yet (%s)", info.name, source, path);
		return CLI_EXIT_ERROR;
	}
	if (rc < 0 && rc != -EPIPE) {
		cli_error("read %s: %s", path, strerror(-rc));
		return CLI_EXIT_ERROR;
	}
	return 0;
}
