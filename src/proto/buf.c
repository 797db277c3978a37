/* Growable byte buffers and byte spans. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A buffer that drained and is larger than this gives its memory back. */
#define BUF_KEEP_BYTES (64 * 1024)

struct span span_cstr(const char *s)
{
	if (!s)
		return SPAN_NONE;
	return span_of(s, strlen(s));
}

bool span_eq_cstr(struct span s, const char *cstr)
{
	size_t n = strlen(cstr);

	return s.ptr && s.len == n && memcmp(s.ptr, cstr, n) == 0;
}

char *span_strdup(struct span s)
{
	char *out;

	if (!s.ptr || memchr(s.ptr, 0, s.len))
		return NULL;
	out = malloc(s.len + 1);
	if (!out)
		return NULL;
	memcpy(out, s.ptr, s.len);
	out[s.len] = 0;
	return out;
}

void buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->head = 0;
	b->len = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	size_t pending = b->len - b->head;
	size_t need, cap;
	uint8_t *data;

	if (b->cap - b->len >= extra)
		return 0;

	/* Reuse the consumed prefix before growing. */
	if (b->head > 0 && b->cap - pending >= extra) {
		memmove(b->data, b->data + b->head, pending);
		b->head = 0;
		b->len = pending;
		return 0;
	}

	if (extra > SIZE_MAX / 2 - pending)
		return -ENOMEM;
	need = pending + extra;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;

	data = malloc(cap);
	if (!data)
		return -ENOMEM;
	if (pending)
		memcpy(data, b->data + b->head, pending);
	free(b->data);
	b->data = data;
	b->cap = cap;
	b->head = 0;
	b->len = pending;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
	int rc = buf_reserve(b, n);

	if (rc < 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

void buf_consume(struct buf *b, size_t n)
{
	b->head += n;
	if (b->head >= b->len) {
		b->head = 0;
		b->len = 0;
	}
}

void buf_shrink(struct buf *b)
{
	if (b->head == b->len && b->cap > BUF_KEEP_BYTES)
		buf_free(b);
}
