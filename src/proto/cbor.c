/* CBOR encoder and bounded decoder. */
#include "cbor.h"

#include <errno.h>
#include <string.h>

/* Additional-information values of the initial byte (RFC 8949, 3.1). */
#define CBOR_AI_1BYTE 24
#define CBOR_AI_2BYTE 25
#define CBOR_AI_4BYTE 26
#define CBOR_AI_8BYTE 27
#define CBOR_AI_INDEFINITE 31

#define CBOR_SIMPLE_FALSE 20
#define CBOR_SIMPLE_TRUE 21
#define CBOR_SIMPLE_NULL 22
#define CBOR_SIMPLE_UNDEFINED 23

static int put_head(struct buf *out, enum cbor_major major, uint64_t v)
{
	uint8_t head[9];
	size_t n;
	uint8_t mt = (uint8_t)(major << 5);

	if (v < CBOR_AI_1BYTE) {
		head[0] = mt | (uint8_t)v;
		n = 1;
	} else if (v <= UINT8_MAX) {
		head[0] = mt | CBOR_AI_1BYTE;
		head[1] = (uint8_t)v;
		n = 2;
	} else if (v <= UINT16_MAX) {
		head[0] = mt | CBOR_AI_2BYTE;
		head[1] = (uint8_t)(v >> 8);
		head[2] = (uint8_t)v;
		n = 3;
	} else if (v <= UINT32_MAX) {
		head[0] = mt | CBOR_AI_4BYTE;
		for (int i = 0; i < 4; i++)
			head[1 + i] = (uint8_t)(v >> (24 - 8 * i));
		n = 5;
	} else {
		head[0] = mt | CBOR_AI_8BYTE;
		for (int i = 0; i < 8; i++)
			head[1 + i] = (uint8_t)(v >> (56 - 8 * i));
		n = 9;
	}
	return buf_append(out, head, n);
}

int cbor_put_uint(struct buf *out, uint64_t v)
{
	return put_head(out, CBOR_UINT, v);
}

int cbor_put_int(struct buf *out, int64_t v)
{
	if (v >= 0)
		return put_head(out, CBOR_UINT, (uint64_t)v);
	/* -1 - v, computed without overflow for INT64_MIN. */
	return put_head(out, CBOR_NEGINT, (uint64_t)(-(v + 1)));
}

int cbor_put_bytes_head(struct buf *out, uint64_t len)
{
	return put_head(out, CBOR_BYTES, len);
}

int cbor_put_bytes(struct buf *out, const void *data, size_t len)
{
	int rc = put_head(out, CBOR_BYTES, len);

	return rc < 0 ? rc : buf_append(out, data, len);
}

int cbor_put_text(struct buf *out, const char *text, size_t len)
{
	int rc = put_head(out, CBOR_TEXT, len);

	return rc < 0 ? rc : buf_append(out, text, len);
}

int cbor_put_cstr(struct buf *out, const char *text)
{
	return cbor_put_text(out, text, strlen(text));
}

int cbor_put_array(struct buf *out, uint64_t count)
{
	return put_head(out, CBOR_ARRAY, count);
}

int cbor_put_map(struct buf *out, uint64_t count)
{
	return put_head(out, CBOR_MAP, count);
}

int cbor_put_bool(struct buf *out, bool v)
{
	uint8_t b = (uint8_t)((CBOR_SIMPLE << 5) | (v ? CBOR_SIMPLE_TRUE : CBOR_SIMPLE_FALSE));

	return buf_append(out, &b, 1);
}

int cbor_put_null(struct buf *out)
{
	uint8_t b = (uint8_t)((CBOR_SIMPLE << 5) | CBOR_SIMPLE_NULL);

	return buf_append(out, &b, 1);
}

/* Reads the initial byte and its argument without consuming them. For major
 * type 7 the argument is the simple value or the raw float bits. */
static int read_head(const struct cbor_reader *r, int *major, uint8_t *ai, uint64_t *arg, size_t *head_len)
{
	size_t avail = (size_t)(r->end - r->pos);
	size_t extra;
	uint64_t v = 0;

	if (avail < 1)
		return -EBADMSG;

	*major = r->pos[0] >> 5;
	*ai = r->pos[0] & 0x1f;

	if (*ai < CBOR_AI_1BYTE)
		extra = 0;
	else if (*ai == CBOR_AI_1BYTE)
		extra = 1;
	else if (*ai == CBOR_AI_2BYTE)
		extra = 2;
	else if (*ai == CBOR_AI_4BYTE)
		extra = 4;
	else if (*ai == CBOR_AI_8BYTE)
		extra = 8;
	else
		return -EBADMSG; /* reserved values and indefinite lengths */

	if (avail - 1 < extra)
		return -EBADMSG;
	if (extra == 0)
		v = *ai;
	for (size_t i = 0; i < extra; i++)
		v = (v << 8) | r->pos[1 + i];

	*arg = v;
	*head_len = 1 + extra;
	return 0;
}

int cbor_peek_major(const struct cbor_reader *r)
{
	if (r->pos >= r->end)
		return -EBADMSG;
	return r->pos[0] >> 5;
}

bool cbor_peek_null(const struct cbor_reader *r)
{
	return r->pos < r->end && r->pos[0] == ((CBOR_SIMPLE << 5) | CBOR_SIMPLE_NULL);
}

/* Consumes a head of the expected major type and returns its argument. */
static int get_head(struct cbor_reader *r, int want, uint64_t *arg)
{
	int major, rc;
	uint8_t ai;
	size_t head_len;

	rc = read_head(r, &major, &ai, arg, &head_len);
	if (rc < 0)
		return rc;
	if (major != want)
		return -EPROTO;
	r->pos += head_len;
	return 0;
}

int cbor_get_uint(struct cbor_reader *r, uint64_t *v)
{
	return get_head(r, CBOR_UINT, v);
}

int cbor_get_int(struct cbor_reader *r, int64_t *v)
{
	struct cbor_reader save = *r;
	uint64_t arg;
	int major = cbor_peek_major(r);

	if (major < 0)
		return major;
	if (major != CBOR_UINT && major != CBOR_NEGINT)
		return -EPROTO;
	if (get_head(r, major, &arg) < 0)
		return -EBADMSG;
	if (arg > INT64_MAX) {
		*r = save;
		return -EPROTO;
	}
	*v = major == CBOR_UINT ? (int64_t)arg : -1 - (int64_t)arg;
	return 0;
}

static int get_string(struct cbor_reader *r, int want, struct span *v)
{
	struct cbor_reader save = *r;
	uint64_t len;
	int rc = get_head(r, want, &len);

	if (rc < 0)
		return rc;
	if (len > (uint64_t)(r->end - r->pos)) {
		*r = save;
		return -EBADMSG;
	}
	v->ptr = r->pos;
	v->len = (size_t)len;
	r->pos += len;
	return 0;
}

int cbor_get_bytes(struct cbor_reader *r, struct span *v)
{
	return get_string(r, CBOR_BYTES, v);
}

int cbor_get_text(struct cbor_reader *r, struct span *v)
{
	return get_string(r, CBOR_TEXT, v);
}

/* A container cannot hold more items than there are bytes left, since each
 * item takes at least one byte; checking this early keeps callers from
 * allocating for absurd counts. */
static int get_container(struct cbor_reader *r, int want, uint64_t *count, uint64_t bytes_per_item)
{
	struct cbor_reader save = *r;
	int rc = get_head(r, want, count);

	if (rc < 0)
		return rc;
	if (*count > (uint64_t)(r->end - r->pos) / bytes_per_item) {
		*r = save;
		return -EBADMSG;
	}
	return 0;
}

int cbor_get_array(struct cbor_reader *r, uint64_t *count)
{
	return get_container(r, CBOR_ARRAY, count, 1);
}

int cbor_get_map(struct cbor_reader *r, uint64_t *count)
{
	return get_container(r, CBOR_MAP, count, 2);
}

int cbor_get_bool(struct cbor_reader *r, bool *v)
{
	if (r->pos >= r->end)
		return -EBADMSG;
	if (r->pos[0] == ((CBOR_SIMPLE << 5) | CBOR_SIMPLE_TRUE))
		*v = true;
	else if (r->pos[0] == ((CBOR_SIMPLE << 5) | CBOR_SIMPLE_FALSE))
		*v = false;
	else
		return -EPROTO;
	r->pos++;
	return 0;
}

int cbor_get_null(struct cbor_reader *r)
{
	if (!cbor_peek_null(r))
		return r->pos >= r->end ? -EBADMSG : -EPROTO;
	r->pos++;
	return 0;
}

static int skip_item(struct cbor_reader *r, int depth)
{
	int major, rc;
	uint8_t ai;
	uint64_t arg;
	size_t head_len;

	if (depth > CBOR_MAX_DEPTH)
		return -EBADMSG;
	rc = read_head(r, &major, &ai, &arg, &head_len);
	if (rc < 0)
		return rc;
	r->pos += head_len;

	switch (major) {
	case CBOR_UINT:
	case CBOR_NEGINT:
		return 0;
	case CBOR_SIMPLE:
		/* A two-byte simple value below 32 is not well formed (RFC 8949,
		 * 3.3). */
		return ai == CBOR_AI_1BYTE && arg < 32 ? -EBADMSG : 0;
	case CBOR_BYTES:
	case CBOR_TEXT:
		if (arg > (uint64_t)(r->end - r->pos))
			return -EBADMSG;
		r->pos += arg;
		return 0;
	case CBOR_TAG:
		return skip_item(r, depth + 1);
	case CBOR_ARRAY:
	case CBOR_MAP:
		if (major == CBOR_MAP) {
			if (arg > UINT64_MAX / 2)
				return -EBADMSG;
			arg *= 2;
		}
		if (arg > (uint64_t)(r->end - r->pos))
			return -EBADMSG;
		for (uint64_t i = 0; i < arg; i++) {
			rc = skip_item(r, depth + 1);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	return -EBADMSG;
}

int cbor_skip(struct cbor_reader *r)
{
	struct cbor_reader save = *r;
	int rc = skip_item(r, 0);

	if (rc < 0)
		*r = save;
	return rc;
}

int cbor_get_u32(struct cbor_reader *r, uint32_t *v)
{
	struct cbor_reader save = *r;
	uint64_t u;
	int rc = cbor_get_uint(r, &u);

	if (rc < 0)
		return rc;
	if (u > UINT32_MAX) {
		*r = save;
		return -EPROTO;
	}
	*v = (uint32_t)u;
	return 0;
}

int cbor_get_u16(struct cbor_reader *r, uint16_t *v)
{
	struct cbor_reader save = *r;
	uint64_t u;
	int rc = cbor_get_uint(r, &u);

	if (rc < 0)
		return rc;
	if (u > UINT16_MAX) {
		*r = save;
		return -EPROTO;
	}
	*v = (uint16_t)u;
	return 0;
}

int cbor_get_i32(struct cbor_reader *r, int32_t *v)
{
	struct cbor_reader save = *r;
	int64_t i;
	int rc = cbor_get_int(r, &i);

	if (rc < 0)
		return rc;
	if (i < INT32_MIN || i > INT32_MAX) {
		*r = save;
		return -EPROTO;
	}
	*v = (int32_t)i;
	return 0;
}

int cbor_get_opt_text(struct cbor_reader *r, struct span *v)
{
	if (cbor_peek_null(r)) {
		*v = SPAN_NONE;
		return cbor_get_null(r);
	}
	return cbor_get_text(r, v);
}

int cbor_get_opt_u64(struct cbor_reader *r, bool *present, uint64_t *v)
{
	int rc;

	*present = false;
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_uint(r, v);
	*present = rc == 0;
	return rc;
}

int cbor_get_opt_u32(struct cbor_reader *r, bool *present, uint32_t *v)
{
	int rc;

	*present = false;
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_u32(r, v);
	*present = rc == 0;
	return rc;
}

int cbor_get_opt_i32(struct cbor_reader *r, bool *present, int32_t *v)
{
	int rc;

	*present = false;
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_i32(r, v);
	*present = rc == 0;
	return rc;
}

int cbor_get_opt_i64(struct cbor_reader *r, bool *present, int64_t *v)
{
	int rc;

	*present = false;
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_int(r, v);
	*present = rc == 0;
	return rc;
}

int cbor_get_opt_bool(struct cbor_reader *r, bool *present, bool *v)
{
	int rc;

	*present = false;
	if (cbor_peek_null(r))
		return cbor_get_null(r);
	rc = cbor_get_bool(r, v);
	*present = rc == 0;
	return rc;
}
