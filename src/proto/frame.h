/* Frames of the agent protocol.
 *
 *   offset 0  u32 BE  len: bytes after this field (5 + body length)
 *   offset 4  u32 BE  id: correlation id (session or request)
 *   offset 8  u8      flags
 *   offset 9          body (CBOR)
 *
 * Routers only read the header; frame_scan() tells them where a frame ends.
 */
#ifndef MSB_PROTO_FRAME_H
#define MSB_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define FRAME_LEN_FIELD_BYTES 4
#define FRAME_HEADER_BYTES 9
/* The smallest len value: id and flags with an empty body. */
#define FRAME_MIN_LEN 5
/* The largest len value a reader accepts (4 MiB). */
#define FRAME_MAX_LEN (4u * 1024 * 1024)
/* The largest body that fits in a frame. */
#define FRAME_MAX_BODY_BYTES (FRAME_MAX_LEN - FRAME_MIN_LEN)

#define FRAME_FLAG_TERMINAL 0x01u
#define FRAME_FLAG_SESSION_START 0x02u
#define FRAME_FLAG_SHUTDOWN 0x04u

/* Ids per relay client: client slot s owns ids [s*STEP+1, s*STEP+STEP-1).
 * This is 4294967295/128 rounded up, which reproduces microsandbox's
 * ranges (slot 1 is 0x02000001..0x03ffffff exclusive). */
#define FRAME_CLIENT_ID_STEP (1u << 25)

static inline uint32_t frame_client_id_start(unsigned slot)
{
	return slot * FRAME_CLIENT_ID_STEP + 1;
}

static inline uint32_t frame_client_id_end(unsigned slot)
{
	return slot * FRAME_CLIENT_ID_STEP + FRAME_CLIENT_ID_STEP - 1;
}

struct frame_header {
	uint32_t len;
	uint32_t id;
	uint8_t flags;
};

/* Looks at the bytes buffered so far. Returns the total size of the first
 * frame (header included) when all of it is present, 0 when more bytes are
 * needed, -EBADMSG when len is below the minimum, -EMSGSIZE when it is above
 * the maximum. Fills h once the 9 header bytes are present. */
long frame_scan(const uint8_t *data, size_t avail, struct frame_header *h);

/* Writes a 9-byte header for a body of body_len bytes. */
void frame_put_header(uint8_t out[FRAME_HEADER_BYTES], uint32_t id, uint8_t flags, size_t body_len);

static inline uint32_t frame_get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void frame_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
