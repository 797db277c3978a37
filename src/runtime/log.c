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

static struct log_file runtime_log = { .fd = -1 };
static enum log_level log_max_level = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_file_open(struct log_file *lf, const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	if (lf->fd >= 0 && lf->fd != fd)
		close(lf->fd);
	lf->fd = fd;
	snprintf(lf->path, sizeof(lf->path), "%s", path);
	lf->size = fstat(fd, &st) == 0 ? (long)st.st_size : 0;
	return 0;
}

void log_file_close(struct log_file *lf)
{
	if (lf->fd >= 0)
		close(lf->fd);
	lf->fd = -1;
}

/* path -> path.1 -> ... -> path.LOG_KEEP_FILES */
static void rotate(struct log_file *lf)
{
	char from[sizeof(lf->path) + 8], to[sizeof(lf->path) + 8], path[sizeof(lf->path)];

	snprintf(path, sizeof(path), "%s", lf->path);
	for (int i = LOG_KEEP_FILES - 1; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", path, i);
		snprintf(to, sizeof(to), "%s.%d", path, i + 1);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", path);
	rename(path, to);
	log_file_open(lf, path);
}

void log_file_write(struct log_file *lf, const void *data, size_t len)
{
	ssize_t n;

	if (lf->fd < 0)
		return;
	if (lf->size >= LOG_ROTATE_BYTES)
		rotate(lf);
	n = write(lf->fd, data, len);
	if (n > 0)
		lf->size += n;
}

int log_open(const char *path)
{
	return log_file_open(&runtime_log, path);
}

void log_close(void)
{
	log_file_close(&runtime_log);
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
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

	if (runtime_log.fd < 0) {
		if (write(STDERR_FILENO, line, (size_t)n) < 0)
			return;
		return;
	}
	log_file_write(&runtime_log, line, (size_t)n);
}
