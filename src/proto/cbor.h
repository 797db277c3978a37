/* CBOR (RFC 8949) encoder and decoder for the subset the agent protocol uses.
 *
 * The encoder writes definite lengths and the shortest integer heads, which
 * is the form the protocol requires. The decoder is strict and bounded: it
 * never reads past its input, rejects indefinite lengths (the protocol never
 * sends them), and limits nesting so that hostile input cannot exhaust the
 * stack. Decoded strings are spans into the input, not copies.
 */
#ifndef MSB_PROTO_CBOR_H
#define MSB_PROTO_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Nesting deeper than this is rejected by cbor_skip(). */
#define CBOR_MAX_DEPTH 32

enum cbor_major {
	CBOR_UINT = 0,
	CBOR_NEGINT = 1,
	CBOR_BYTES = 2,
	CBOR_TEXT = 3,
	CBOR_ARRAY = 4,
	CBOR_MAP = 5,
	CBOR_TAG = 6,
	CBOR_SIMPLE = 7,
};

/* Encoding. Each call appends to out and returns 0 or -ENOMEM. */
int cbor_put_uint(struct buf *out, uint64_t v);
int cbor_put_int(struct buf *out, int64_t v);
int cbor_put_bytes(struct buf *out, const void *data, size_t len);
int cbor_put_text(struct buf *out, const char *text, size_t len);
int cbor_put_cstr(struct buf *out, const char *text);
int cbor_put_array(struct buf *out, uint64_t count);
int cbor_put_map(struct buf *out, uint64_t count);
int cbor_put_bool(struct buf *out, bool v);
int cbor_put_null(struct buf *out);
/* Appends a byte string head for len bytes that the caller appends next. */
int cbor_put_bytes_head(struct buf *out, uint64_t len);

/* Decoding. Each call consumes one item on success and returns 0; on failure
 * it returns -EBADMSG (malformed or truncated input) or -EPROTO (well formed,
 * but not the expected type or out of the target type's range) and leaves
 * the reader where it was. */
struct cbor_reader {
	const uint8_t *pos;
	const uint8_t *end;
};

static inline void cbor_reader_init(struct cbor_reader *r, const void *data, size_t len)
{
	r->pos = (const uint8_t *)data;
	r->end = r->pos + len;
}

static inline bool cbor_at_end(const struct cbor_reader *r)
{
	return r->pos >= r->end;
}

/* Returns the major type of the next item, or -EBADMSG at the end of input. */
int cbor_peek_major(const struct cbor_reader *r);
bool cbor_peek_null(const struct cbor_reader *r);

int cbor_get_uint(struct cbor_reader *r, uint64_t *v);
int cbor_get_int(struct cbor_reader *r, int64_t *v);
int cbor_get_bytes(struct cbor_reader *r, struct span *v);
int cbor_get_text(struct cbor_reader *r, struct span *v);
int cbor_get_array(struct cbor_reader *r, uint64_t *count);
int cbor_get_map(struct cbor_reader *r, uint64_t *count);
int cbor_get_bool(struct cbor_reader *r, bool *v);
int cbor_get_null(struct cbor_reader *r);
/* Skips one whole item of any type, nested items included. */
int cbor_skip(struct cbor_reader *r);

/* Typed helpers on top of the above: range-checked integers and
 * "null or value" optionals. An absent optional span gets ptr == NULL. */
int cbor_get_u32(struct cbor_reader *r, uint32_t *v);
int cbor_get_u16(struct cbor_reader *r, uint16_t *v);
int cbor_get_i32(struct cbor_reader *r, int32_t *v);
int cbor_get_opt_text(struct cbor_reader *r, struct span *v);
int cbor_get_opt_u64(struct cbor_reader *r, bool *present, uint64_t *v);
int cbor_get_opt_u32(struct cbor_reader *r, bool *present, uint32_t *v);
int cbor_get_opt_i32(struct cbor_reader *r, bool *present, int32_t *v);
int cbor_get_opt_i64(struct cbor_reader *r, bool *present, int64_t *v);
int cbor_get_opt_bool(struct cbor_reader *r, bool *present, bool *v);

#endif
