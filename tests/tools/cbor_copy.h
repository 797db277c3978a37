/* Generic re-encoding of one CBOR item through the msb codec: the item is
 * read with cbor_get_*() only and written back with cbor_put_*(), so the
 * output is the item in the codec's canonical form (shortest heads, definite
 * lengths). Shared by the cbor-roundtrip tool and the fuzz_cbor target.
 */
#ifndef MSB_TESTS_CBOR_COPY_H
#define MSB_TESTS_CBOR_COPY_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/proto/cbor.h"

/* A copy that stops at an item the codec cannot re-encode records why and
 * where, for the caller's message. */
struct cbor_copy {
	struct buf *out;
	const uint8_t *start;
	const char *unsupported;
	size_t unsupported_at;
};

static int cbor_copy_unsupported(struct cbor_copy *c, const struct cbor_reader *r, const char *reason)
{
	c->unsupported = reason;
	c->unsupported_at = (size_t)(r->pos - c->start);
	return -EPROTO;
}

/* Copies one item and everything nested in it from r to c->out. Returns 0,
 * -EBADMSG for malformed input or nesting deeper than cbor_skip() accepts,
 * -EPROTO for an item that the codec cannot re-encode (a tag, a float, a
 * simple value other than true, false and null, a negative integer below
 * INT64_MIN), or -ENOMEM. */
static int cbor_copy_item(struct cbor_copy *c, struct cbor_reader *r, int depth)
{
	uint64_t u, count;
	int64_t i;
	struct span s;
	bool b;
	int major, rc;

	/* cbor_skip() rejects an item nested deeper than CBOR_MAX_DEPTH, and
	 * callers compare its result with this one. */
	if (depth > CBOR_MAX_DEPTH)
		return -EBADMSG;

	major = cbor_peek_major(r);
	if (major < 0)
		return major;

	switch (major) {
	case CBOR_UINT:
		rc = cbor_get_uint(r, &u);
		return rc < 0 ? rc : cbor_put_uint(c->out, u);
	case CBOR_NEGINT:
		rc = cbor_get_int(r, &i);
		if (rc == -EPROTO)
			return cbor_copy_unsupported(c, r, "negative integer below INT64_MIN");
		return rc < 0 ? rc : cbor_put_int(c->out, i);
	case CBOR_BYTES:
		rc = cbor_get_bytes(r, &s);
		return rc < 0 ? rc : cbor_put_bytes(c->out, s.ptr, s.len);
	case CBOR_TEXT:
		rc = cbor_get_text(r, &s);
		return rc < 0 ? rc : cbor_put_text(c->out, (const char *)s.ptr, s.len);
	case CBOR_ARRAY:
	case CBOR_MAP:
		if (major == CBOR_ARRAY)
			rc = cbor_get_array(r, &count);
		else
			rc = cbor_get_map(r, &count);
		if (rc < 0)
			return rc;
		if (major == CBOR_ARRAY)
			rc = cbor_put_array(c->out, count);
		else
			rc = cbor_put_map(c->out, count);
		if (rc < 0)
			return rc;
		/* cbor_get_map() bounds count by the input size, so this
		 * cannot overflow. */
		if (major == CBOR_MAP)
			count *= 2;
		for (uint64_t n = 0; n < count; n++) {
			rc = cbor_copy_item(c, r, depth + 1);
			if (rc < 0)
				return rc;
		}
		return 0;
	case CBOR_SIMPLE:
		if (cbor_peek_null(r)) {
			rc = cbor_get_null(r);
			return rc < 0 ? rc : cbor_put_null(c->out);
		}
		rc = cbor_get_bool(r, &b);
		if (rc == -EPROTO)
			return cbor_copy_unsupported(c, r, "float or simple value");
		return rc < 0 ? rc : cbor_put_bool(c->out, b);
	default:
		return cbor_copy_unsupported(c, r, "tag");
	}
}

/* Outcome of one whole input item, from the copy and from cbor_skip(). */
enum cbor_copy_result {
	CBOR_COPY_OK,
	CBOR_COPY_MALFORMED,
	CBOR_COPY_UNSUPPORTED,
	/* The copy and cbor_skip() disagree about the input: a codec bug. */
	CBOR_COPY_MISMATCH,
	CBOR_COPY_NOMEM,
};

/* Copies the item that fills data[0, len) into c->out and checks the result
 * against cbor_skip() over the same bytes. Trailing bytes after the item make
 * the input malformed. */
static enum cbor_copy_result cbor_copy_whole(struct cbor_copy *c, const uint8_t *data, size_t len)
{
	struct cbor_reader r, skip;
	bool skip_ok;
	int rc;

	c->start = data;
	c->unsupported = NULL;
	cbor_reader_init(&r, data, len);
	rc = cbor_copy_item(c, &r, 0);
	if (rc == 0 && !cbor_at_end(&r))
		rc = -EBADMSG;
	if (rc == -ENOMEM)
		return CBOR_COPY_NOMEM;

	cbor_reader_init(&skip, data, len);
	skip_ok = cbor_skip(&skip) == 0 && cbor_at_end(&skip);

	/* The copy stops at the first item it cannot re-encode, before it
	 * has seen the rest, so cbor_skip() decides whether the whole input
	 * is well formed. */
	if (rc == -EPROTO)
		return skip_ok ? CBOR_COPY_UNSUPPORTED : CBOR_COPY_MALFORMED;
	if ((rc == 0) != skip_ok)
		return CBOR_COPY_MISMATCH;
	return rc == 0 ? CBOR_COPY_OK : CBOR_COPY_MALFORMED;
}

#endif
