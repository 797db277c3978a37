/* Where msb keeps its state: $MSB_HOME, by default ~/.msb.
 *
 *   sandboxes/NAME/   one sandbox: sockets, logs, boot errors, upper image
 *   cache/            guest kernel, default root image, composed initramfs
 */
#ifndef MSB_BASE_HOME_H
#define MSB_BASE_HOME_H

#include <stddef.h>

#include "msb/msb.h"

/* Maximum length of a sandbox name. The name becomes a directory name and
 * part of socket paths, which Unix sockets limit to 108 bytes. */
#define HOME_NAME_MAX 40

/* Fills out with $MSB_HOME joined with the printf-style suffix. */
int home_path(char *out, size_t out_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks that name is usable as a sandbox name: 1 to HOME_NAME_MAX of
 * [A-Za-z0-9_.-], not starting with '.' or '-'. */
int home_check_name(const char *name, msb_error *err);

#endif
