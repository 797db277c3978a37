/* The runtime's logger, with size-based rotation. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int log_fd = -1;
static char log_path[PATH_MAX];
static long log_size;
static enum log_level log_max_level = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_open(const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	log_close();
	log_fd = fd;
	snprintf(log_path, sizeof(log_path), "%s", path);
	log_size = fstat(fd, &st) == 0 ? (long)st.st_size : 0;
	return 0;
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

/* runtime.log -> runtime.log.1 -> ... -> runtime.log.LOG_KEEP_FILES */
static void rotate(void)
{
	char from[PATH_MAX + 8], to[PATH_MAX + 8];

	for (int i = LOG_KEEP_FILES - 1; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", log_path, i);
		snprintf(to, sizeof(to), "%s.%d", log_path, i + 1);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", log_path);
	rename(log_path, to);
	log_open(log_path);
	log_size = 0;
}

void log_write(enum log_level level, const char *part, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_max_level)
		return;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s %s: ", ts.tv_nsec / 1000000,
		      level_names[level], part);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';

	if (log_fd < 0) {
		if (write(STDERR_FILENO, line, (size_t)n) < 0)
			return;
		return;
	}
	if (write(log_fd, line, (size_t)n) > 0)
		log_size += n;
	if (log_size >= LOG_ROTATE_BYTES)
		rotate();
}
