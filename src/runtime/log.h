/* The runtime's logger: one line per event, with time, level and the part
 * that logs ("relay", "engine", ...), written to runtime.log in the sandbox
 * directory. The file rotates at LOG_ROTATE_BYTES, keeping LOG_KEEP_FILES
 * older files (runtime.log.1 is the newest of them). Without a file, lines
 * go to stderr. */
#ifndef MSB_RUNTIME_LOG_H
#define MSB_RUNTIME_LOG_H

#define LOG_ROTATE_BYTES (10L * 1024 * 1024)
#define LOG_KEEP_FILES 3

enum log_level {
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
};

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
