/* libFuzzer target for the CBOR codec: reads the input as one CBOR item with
 * the cbor_get_*() calls, re-encodes it, and aborts when the codec breaks
 * one of its own rules:
 *   - the cbor_get_*() calls and cbor_skip() agree on whether the input is
 *     well formed;
 *   - re-encoding never grows an item (the output has the shortest heads)
 *     and re-encoding the output gives the same bytes;
 *   - a failed cbor_get_*() returns -EBADMSG or -EPROTO and leaves the
 *     reader where it was, and a successful one on a scalar ends where
 *     cbor_skip() ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/proto/cbor.h"
#include "../tools/cbor_copy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum getter {
	GET_UINT,
	GET_INT,
	GET_BYTES,
	GET_TEXT,
	GET_BOOL,
	GET_NULL,
	GET_U32,
	GET_U16,
	GET_I32,
	GET_OPT_TEXT,
	GET_OPT_U64,
	GET_OPT_U32,
	GET_OPT_I32,
	GET_OPT_I64,
	GET_OPT_BOOL,
	/* The getters below read only the head of a container. */
	GET_ARRAY,
	GET_MAP,
	GET_COUNT,
};

static int call_getter(enum getter g, struct cbor_reader *r)
{
	union {
		uint64_t u64;
		int64_t i64;
		uint32_t u32;
		uint16_t u16;
		int32_t i32;
		bool b;
		struct span s;
	} v;
	bool present;

	switch (g) {
	case GET_UINT:
		return cbor_get_uint(r, &v.u64);
	case GET_INT:
		return cbor_get_int(r, &v.i64);
	case GET_BYTES:
		return cbor_get_bytes(r, &v.s);
	case GET_TEXT:
		return cbor_get_text(r, &v.s);
	case GET_BOOL:
		return cbor_get_bool(r, &v.b);
	case GET_NULL:
		return cbor_get_null(r);
	case GET_U32:
		return cbor_get_u32(r, &v.u32);
	case GET_U16:
		return cbor_get_u16(r, &v.u16);
	case GET_I32:
		return cbor_get_i32(r, &v.i32);
	case GET_OPT_TEXT:
		return cbor_get_opt_text(r, &v.s);
	case GET_OPT_U64:
		return cbor_get_opt_u64(r, &present, &v.u64);
	case GET_OPT_U32:
		return cbor_get_opt_u32(r, &present, &v.u32);
	case GET_OPT_I32:
		return cbor_get_opt_i32(r, &present, &v.i32);
	case GET_OPT_I64:
		return cbor_get_opt_i64(r, &present, &v.i64);
	case GET_OPT_BOOL:
		return cbor_get_opt_bool(r, &present, &v.b);
	case GET_ARRAY:
		return cbor_get_array(r, &v.u64);
	case GET_MAP:
		return cbor_get_map(r, &v.u64);
	case GET_COUNT:
		break;
	}
	abort();
}

static void check_getters(const uint8_t *data, size_t size)
{
	struct cbor_reader skip;
	int skip_rc;

	cbor_reader_init(&skip, data, size);
	skip_rc = cbor_skip(&skip);

	for (enum getter g = 0; g < GET_COUNT; g++) {
		struct cbor_reader r;
		int rc;

		cbor_reader_init(&r, data, size);
		rc = call_getter(g, &r);
		if (rc < 0) {
			if ((rc != -EBADMSG && rc != -EPROTO) || r.pos != data)
				abort();
			continue;
		}
		if (r.pos <= data || r.pos > data + size)
			abort();
		if (g < GET_ARRAY && (skip_rc < 0 || r.pos != skip.pos))
			abort();
	}
}

static void check_copy(const uint8_t *data, size_t size)
{
	struct buf out, again;
	struct cbor_copy first = { .out = &out };
	struct cbor_copy second = { .out = &again };

	buf_init(&out);
	buf_init(&again);
	switch (cbor_copy_whole(&first, data, size)) {
	case CBOR_COPY_OK:
		if (out.len > size)
			abort();
		if (cbor_copy_whole(&second, out.data, out.len) != CBOR_COPY_OK)
			abort();
		if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
			abort();
		break;
	case CBOR_COPY_MISMATCH:
		abort();
	case CBOR_COPY_MALFORMED:
	case CBOR_COPY_UNSUPPORTED:
	case CBOR_COPY_NOMEM:
		break;
	}
	buf_free(&out);
	buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_getters(data, size);
	check_copy(data, size);
	return 0;
}
