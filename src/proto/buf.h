/* Growable byte buffers and byte spans.
 *
 * A buf is used both to build frames and as a FIFO queue of bytes waiting to
 * be written to a file descriptor: data lives in [head, len), buf_consume()
 * advances head, and space is reclaimed when the buffer grows again.
 */
#ifndef MSB_PROTO_BUF_H
#define MSB_PROTO_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A view of bytes owned by someone else. ptr == NULL means "absent". */
struct span {
	const uint8_t *ptr;
	size_t len;
};

struct buf {
	uint8_t *data;
	size_t head; /* first unconsumed byte */
	size_t len;  /* end of valid data */
	size_t cap;
};

#define SPAN_NONE ((struct span){ NULL, 0 })

static inline struct span span_of(const void *ptr, size_t len)
{
	return (struct span){ (const uint8_t *)ptr, len };
}

struct span span_cstr(const char *s);
bool span_eq_cstr(struct span s, const char *cstr);
/* Copies a span into a new NUL-terminated string; NULL on allocation failure
 * or when the span holds a NUL byte (such text cannot reach a C API). */
char *span_strdup(struct span s);

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Ensures room for extra more bytes after len; returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t n);
/* Number of unconsumed bytes. */
static inline size_t buf_pending(const struct buf *b)
{
	return b->len - b->head;
}
static inline const uint8_t *buf_peek(const struct buf *b)
{
	return b->data + b->head;
}
void buf_consume(struct buf *b, size_t n);
/* Releases memory of a large, now empty buffer so that idle queues stay small. */
void buf_shrink(struct buf *b);

#endif
