/* File helpers shared by the runtime, the client library and the CLI. */
#ifndef MSB_BASE_FILES_H
#define MSB_BASE_FILES_H

#include <stddef.h>

/* Creates dir and its missing parents with mode; returns 0 or -errno. */
int files_mkdir_p(const char *dir, unsigned mode);
/* Removes path and everything below it, without following symlinks. */
int files_remove_tree(const char *path);
/* Writes data to path through a temporary file and rename(), so readers
 * see the old content or the new, never a part. */
int files_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole file of at most max bytes into a new NUL-terminated buffer. */
int files_read_all(const char *path, size_t max, char **out, size_t *out_len);
/* Writes all of data to fd, retrying short writes and EINTR. */
int files_write_full(int fd, const void *data, size_t len);

#endif
