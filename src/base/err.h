/* Error values with messages.
 *
 * Functions return 0 or a negative errno and, when given a struct msb_error,
 * fill it with a message that says what was being done and to what, e.g.
 * "open root image /x: No such file or directory".
 */
#ifndef MSB_BASE_ERR_H
#define MSB_BASE_ERR_H

#include "msb/msb.h"

/* Sets err (when not NULL) and returns code, which should be -errno. */
int err_set(msb_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like err_set, with ": strerror(-code)" appended. */
int err_sys(msb_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void err_clear(msb_error *err);

#endif
