/* Frame header parsing and writing. */
#include "frame.h"

#include <errno.h>

long frame_scan(const uint8_t *data, size_t avail, struct frame_header *h)
{
	uint32_t len;

	if (avail < FRAME_LEN_FIELD_BYTES)
		return 0;

	/* The length alone decides whether the stream is usable; check it
	 * before waiting for the rest, so that a bad length is reported at
	 * once instead of after a long wait for bytes that never come. */
	len = frame_get_be32(data);
	if (len < FRAME_MIN_LEN)
		return -EBADMSG;
	if (len > FRAME_MAX_LEN)
		return -EMSGSIZE;

	if (avail < FRAME_HEADER_BYTES)
		return 0;
	h->len = len;
	h->id = frame_get_be32(data + 4);
	h->flags = data[8];

	if (avail - FRAME_LEN_FIELD_BYTES < len)
		return 0;
	return (long)len + FRAME_LEN_FIELD_BYTES;
}

void frame_put_header(uint8_t out[FRAME_HEADER_BYTES], uint32_t id, uint8_t flags, size_t body_len)
{
	frame_put_be32(out, (uint32_t)(body_len + FRAME_MIN_LEN));
	frame_put_be32(out + 4, id);
	out[8] = flags;
}
