/* libFuzzer target for frame and message decoding. It runs the input
 * through frame_scan(), msg_decode() and cbor_skip(). A message that decodes
 * must encode, decode again with the same type and id, and encode to the
 * same frame a second time, or the target aborts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/proto/cbor.h"
#include "../../src/proto/frame.h"
#include "../../src/proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame_scan(const uint8_t *data, size_t size)
{
	struct frame_header h;
	long total = frame_scan(data, size, &h);

	if (total > 0 && (total < FRAME_HEADER_BYTES || (size_t)total > size || h.len + 4 != (size_t)total))
		abort();
	if (total < 0 && total != -EBADMSG && total != -EMSGSIZE)
		abort();
}

/* Encodes m, decodes the frame again and encodes the result. The type and id
 * must survive and both frames must be equal. A message too large to encode
 * is skipped, since a decoded frame near the size limit can grow. */
static void check_reencode(const struct msg *m)
{
	struct buf first, second;
	struct msg again;
	int rc;

	buf_init(&first);
	buf_init(&second);
	rc = msg_encode(&first, m);
	if (rc == -EMSGSIZE)
		goto out;
	if (rc < 0)
		abort();

	if (msg_decode(first.data, first.len, &again) < 0)
		abort();
	if (again.type != m->type || again.id != m->id)
		abort();
	if (msg_encode(&second, &again) < 0)
		abort();
	if (second.len != first.len || memcmp(second.data, first.data, first.len) != 0)
		abort();
	msg_free(&again);
out:
	buf_free(&first);
	buf_free(&second);
}

static void check_msg_decode(const uint8_t *data, size_t size)
{
	struct msg m;
	int rc = msg_decode(data, size, &m);

	if (rc == 0 && m.type != MSG_UNKNOWN)
		check_reencode(&m);
	if (rc < 0 && rc != -EBADMSG && rc != -EPROTO && rc != -EMSGSIZE && rc != -ENOMEM)
		abort();
	/* msg_free() must be safe after a failed decode too. */
	msg_free(&m);
}

/* Skips items until the end or the first error. The reader must stay inside
 * the input and must not move on an error. */
static void check_skip(const uint8_t *data, size_t size)
{
	struct cbor_reader r;

	cbor_reader_init(&r, data, size);
	while (!cbor_at_end(&r)) {
		const uint8_t *before = r.pos;

		if (cbor_skip(&r) < 0) {
			if (r.pos != before)
				abort();
			break;
		}
		if (r.pos <= before || r.pos > data + size)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_frame_scan(data, size);
	check_msg_decode(data, size);
	check_skip(data, size);
	if (size > FRAME_HEADER_BYTES)
		check_skip(data + FRAME_HEADER_BYTES, size - FRAME_HEADER_BYTES);
	return 0;
}
