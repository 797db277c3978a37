/* Just enough JSON for msb's own files: writing strings and flat objects,
 * and reading one string or number field back from a flat object. */
#ifndef MSB_BASE_JSON_H
#define MSB_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "../proto/buf.h"

/* Appends s as a quoted JSON string. Bytes that are not valid UTF-8 become
 * U+FFFD; control characters are escaped. */
int json_append_string(struct buf *b, const char *s, size_t len);
int json_append_cstr(struct buf *b, const char *s);
int json_append_raw(struct buf *b, const char *s);

/* Finds "key": "value" in a flat object and copies the unescaped value.
 * Returns false when the key is missing or not a string. */
bool json_get_string(const char *json, const char *key, char *out, size_t out_len);
bool json_get_long(const char *json, const char *key, long *out);

#endif
