/* Checks of names and paths that come from an untrusted side (a guest's
 * directory listing, a tar stream) before they name anything on the side
 * being written.
 *
 * Each check returns NULL when the value is acceptable and otherwise the
 * reason it is not, a static string for messages such as
 * "refusing \"../x\" from the guest: <reason>".
 */
#ifndef MSB_BASE_PATHCHECK_H
#define MSB_BASE_PATHCHECK_H

#include <stddef.h>

/* A single directory entry name: not empty, not "." or "..", no '/'. */
const char *pathcheck_name(const char *name);

/* An entry path of a listing of dir: dir joined with one valid name, as
 * the agent joins them (no extra '/' after a dir that ends with one).
 * Sets *name to the name inside path. */
const char *pathcheck_child(const char *dir, const char *path, const char **name);

/* A relative member path of len bytes (a tar member name): no NUL byte,
 * not empty, not absolute, no ".." component. Writes the clean form to
 * clean (no "." or empty components, no trailing '/'; "" for the top
 * directory itself) and the number of its components to *depth. */
const char *pathcheck_relative(const char *path, size_t len, char *clean, size_t clean_len, unsigned *depth);

/* A symlink target, for a link max_up directories below the top of the
 * tree being written: relative, not empty, and its ".." components, all
 * at the start, are at most max_up. A ".." after a name is rejected
 * because the name may itself be a symlink, which makes counting unsound. */
const char *pathcheck_link_target(const char *target, unsigned max_up);

/* Copies s to out (of out_len bytes, always NUL-terminated) with bytes
 * outside printable ASCII and '"' and '\\' written as \xNN, so that a
 * hostile name cannot send terminal escape sequences. */
void pathcheck_quote(const char *s, char *out, size_t out_len);

#endif
