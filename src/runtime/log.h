/* The runtime's logger: one line per event, with time, level and the part
 * that logs ("relay", "engine", ...), written to runtime.log in the sandbox
 * directory. The file rotates at LOG_ROTATE_BYTES, keeping LOG_KEEP_FILES
 * older files (runtime.log.1 is the newest of them). Without a file, lines
 * go to stderr. */
#ifndef MSB_RUNTIME_LOG_H
#define MSB_RUNTIME_LOG_H

#include <stddef.h>

#define LOG_ROTATE_BYTES (10L * 1024 * 1024)
#define LOG_KEEP_FILES 3

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

/* A file that rotates at LOG_ROTATE_BYTES: path becomes path.1, path.1
 * becomes path.2, and so on up to LOG_KEEP_FILES. */
struct log_file {
	int fd;
	long size;
	char path[4096];
};

int log_file_open(struct log_file *lf, const char *path);
/* Appends data (one or more whole lines), rotating first when full. */
void log_file_write(struct log_file *lf, const void *data, size_t len);
void log_file_close(struct log_file *lf);

/* Logs to path from now on; returns 0 or -errno. */
int log_open(const char *path);
void log_close(void);
/* Messages above this level are dropped; MSB_LOG=debug raises it. */
void log_set_level(enum log_level level);

void log_write(enum log_level level, const char *part, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(part, ...) log_write(LOG_ERROR, part, __VA_ARGS__)
#define log_warn(part, ...) log_write(LOG_WARN, part, __VA_ARGS__)
#define log_info(part, ...) log_write(LOG_INFO, part, __VA_ARGS__)
#define log_debug(part, ...) log_write(LOG_DEBUG, part, __VA_ARGS__)

#endif
