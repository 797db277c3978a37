/* cbor-roundtrip: re-encodes CBOR items through the msb codec, or writes
 * random values encoded by it, for cross-checks against another CBOR
 * implementation (tests/cbor_crosscheck.py).
 *
 *   cbor-roundtrip                        stdin records to stdout records
 *   cbor-roundtrip --generate SEED COUNT  COUNT random values to stdout
 *
 * A record is a u32 big-endian length followed by that many bytes, which hold
 * one CBOR item. An input record that is not exactly one well-formed item
 * gives an output record of length 0xffffffff with no body, and the tool
 * continues with the next record.
 *
 * Exit status:
 *   0  success
 *   1  usage or I/O error
 *   2  a well-formed item that the codec cannot re-encode: a tag, a float,
 *      a simple value other than true, false and null, or a negative
 *      integer below INT64_MIN
 *   3  the cbor_get_*() calls and cbor_skip() disagree on whether a record
 *      is well formed
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/proto/cbor.h"
#include "../../src/proto/frame.h"
#include "cbor_copy.h"

#define RECORD_INVALID 0xffffffffu

static void die(const char *msg)
{
	fprintf(stderr, "cbor-roundtrip: %s\n", msg);
	exit(1);
}

static void write_all(const void *data, size_t len)
{
	if (len && fwrite(data, 1, len, stdout) != len)
		die("write to stdout failed");
}

static void write_record(const struct buf *b)
{
	uint8_t len[4];

	if (buf_pending(b) >= RECORD_INVALID)
		die("output item too large for a record");
	frame_put_be32(len, (uint32_t)buf_pending(b));
	write_all(len, sizeof(len));
	write_all(buf_peek(b), buf_pending(b));
}

static void write_invalid_record(void)
{
	uint8_t len[4];

	frame_put_be32(len, RECORD_INVALID);
	write_all(len, sizeof(len));
}

/* Reads exactly len bytes. Returns false when the input ends before the
 * first byte and eof_ok is set. Any other short read exits. */
static bool read_exact(void *data, size_t len, bool eof_ok)
{
	size_t n = fread(data, 1, len, stdin);

	if (n == len)
		return true;
	if (ferror(stdin))
		die("read from stdin failed");
	if (n == 0 && eof_ok)
		return false;
	die("input ends inside a record");
	return false;
}

static int roundtrip(void)
{
	struct buf out;
	uint8_t *data = NULL;
	uint64_t index = 0;

	buf_init(&out);
	for (;; index++) {
		struct cbor_copy c = { .out = &out };
		uint8_t head[4];
		uint32_t len;

		if (!read_exact(head, sizeof(head), true))
			break;
		len = frame_get_be32(head);
		if (len == RECORD_INVALID)
			die("input record has the reserved length 0xffffffff");
		free(data);
		/* One extra byte, so that an empty record gets a valid pointer. */
		data = malloc((size_t)len + 1);
		if (!data)
			die("out of memory");
		if (len)
			read_exact(data, len, false);

		buf_reset(&out);
		switch (cbor_copy_whole(&c, data, len)) {
		case CBOR_COPY_OK:
			write_record(&out);
			break;
		case CBOR_COPY_MALFORMED:
			write_invalid_record();
			break;
		case CBOR_COPY_UNSUPPORTED:
			fflush(stdout);
			fprintf(stderr, "cbor-roundtrip: record %" PRIu64 ": unsupported item at offset %zu: %s\n",
				index, c.unsupported_at, c.unsupported);
			exit(2);
		case CBOR_COPY_MISMATCH:
			fflush(stdout);
			fprintf(stderr,
				"cbor-roundtrip: record %" PRIu64 ": cbor_get_*() and cbor_skip() disagree on whether it is well formed\n",
				index);
			exit(3);
		case CBOR_COPY_NOMEM:
			die("out of memory");
		}
	}
	free(data);
	buf_free(&out);
	if (fflush(stdout) != 0)
		die("write to stdout failed");
	return 0;
}

/* ---- Random values ---- */

/* Values at every change of CBOR head size (RFC 8949, section 3). */
static const uint64_t head_boundaries[] = {
	0, 23, 24, 255, 256, 65535, 65536, UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX,
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GEN_MAX_DEPTH 5
#define GEN_MAX_ITEMS 8
#define GEN_ERR(rc) \
	do { \
		if ((rc) < 0) \
			die("out of memory"); \
	} while (0)

/* xorshift64 with the shifts 13, 7, 17. The state must never be zero,
 * because zero maps to zero. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

static uint64_t gen_uint(void)
{
	if (rng_below(2)) {
		uint64_t v = head_boundaries[rng_below(ARRAY_LEN(head_boundaries))];

		/* Step off the boundary by one either way. Wrapping at 0 and
		 * UINT64_MAX lands on another boundary, which is fine. */
		return v + rng_below(3) - 1;
	}
	return rng_next() >> rng_below(64);
}

/* A negative int64_t: -1 - n for n near a head boundary, clamped to the
 * int64_t range because cbor_put_int() takes an int64_t. */
static int64_t gen_negint(void)
{
	uint64_t n = gen_uint();

	if (n > INT64_MAX)
		n = rng_below(2) ? INT64_MAX : INT64_MAX - rng_below(3);
	return -1 - (int64_t)n;
}

static size_t gen_length(void)
{
	static const size_t boundary_lengths[] = { 23, 24, 255, 256, 65535, 65536, 70000 };
	uint64_t pick = rng_below(100);

	if (pick < 2)
		return boundary_lengths[rng_below(ARRAY_LEN(boundary_lengths))];
	if (pick < 10)
		return (size_t)rng_below(300);
	return (size_t)rng_below(12);
}

/* Appends the UTF-8 encoding of a random code point, surrogates excluded,
 * from the 1-, 2-, 3- or 4-byte range. */
static void gen_utf8_char(struct buf *b)
{
	uint8_t u[4];
	uint32_t cp;
	size_t n;

	switch (rng_below(4)) {
	case 0:
		cp = (uint32_t)rng_below(0x80);
		u[0] = (uint8_t)cp;
		n = 1;
		break;
	case 1:
		cp = 0x80 + (uint32_t)rng_below(0x800 - 0x80);
		u[0] = (uint8_t)(0xc0 | (cp >> 6));
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
		break;
	case 2:
		do
			cp = 0x800 + (uint32_t)rng_below(0x10000 - 0x800);
		while (cp >= 0xd800 && cp <= 0xdfff);
		u[0] = (uint8_t)(0xe0 | (cp >> 12));
		u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
		break;
	default:
		cp = 0x10000 + (uint32_t)rng_below(0x110000 - 0x10000);
		u[0] = (uint8_t)(0xf0 | (cp >> 18));
		u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
		break;
	}
	GEN_ERR(buf_append(b, u, n));
}

static void gen_text(struct buf *out)
{
	struct buf text;
	size_t chars = gen_length();

	buf_init(&text);
	for (size_t i = 0; i < chars; i++)
		gen_utf8_char(&text);
	GEN_ERR(cbor_put_text(out, (const char *)text.data, text.len));
	buf_free(&text);
}

static void gen_bytes(struct buf *out)
{
	size_t len = gen_length();
	size_t start;

	GEN_ERR(cbor_put_bytes_head(out, len));
	start = out->len;
	GEN_ERR(buf_reserve(out, len));
	for (size_t i = 0; i < len; i++)
		out->data[start + i] = (uint8_t)rng_next();
	out->len += len;
}

static void gen_value(struct buf *out, int depth);

/* A text or integer key that differs from the keys before it, because
 * decoders that build dictionaries keep only one of two equal keys. */
static void gen_map_key(struct buf *out, const size_t *key_start, const size_t *key_len, size_t n_keys)
{
	size_t start = out->len;

	for (;;) {
		bool unique = true;

		out->len = start;
		if (rng_below(2))
			gen_text(out);
		else if (rng_below(2))
			GEN_ERR(cbor_put_uint(out, gen_uint()));
		else
			GEN_ERR(cbor_put_int(out, gen_negint()));

		for (size_t k = 0; k < n_keys && unique; k++)
			if (key_len[k] == out->len - start &&
			    memcmp(out->data + key_start[k], out->data + start, key_len[k]) == 0)
				unique = false;
		if (unique)
			return;
	}
}

static void gen_container(struct buf *out, int depth)
{
	size_t key_start[GEN_MAX_ITEMS], key_len[GEN_MAX_ITEMS];
	size_t count = (size_t)rng_below(GEN_MAX_ITEMS + 1);

	if (rng_below(2)) {
		GEN_ERR(cbor_put_array(out, count));
		for (size_t i = 0; i < count; i++)
			gen_value(out, depth + 1);
		return;
	}
	GEN_ERR(cbor_put_map(out, count));
	for (size_t i = 0; i < count; i++) {
		key_start[i] = out->len;
		gen_map_key(out, key_start, key_len, i);
		key_len[i] = out->len - key_start[i];
		gen_value(out, depth + 1);
	}
}

static void gen_value(struct buf *out, int depth)
{
	/* Kind 6 is a container, which GEN_MAX_DEPTH cuts off. */
	uint64_t kinds = depth < GEN_MAX_DEPTH ? 7 : 6;

	switch (rng_below(kinds)) {
	case 0:
		GEN_ERR(cbor_put_uint(out, gen_uint()));
		break;
	case 1:
		GEN_ERR(cbor_put_int(out, gen_negint()));
		break;
	case 2:
		gen_bytes(out);
		break;
	case 3:
		gen_text(out);
		break;
	case 4:
		GEN_ERR(cbor_put_bool(out, rng_below(2)));
		break;
	case 5:
		GEN_ERR(cbor_put_null(out));
		break;
	default:
		gen_container(out, depth);
		break;
	}
}

/* Nested one-element arrays down to the deepest level that cbor_skip()
 * accepts, with a scalar at the bottom. */
static void gen_deep(struct buf *out)
{
	int levels = 1 + (int)rng_below(CBOR_MAX_DEPTH);

	for (int i = 0; i < levels; i++)
		GEN_ERR(cbor_put_array(out, 1));
	GEN_ERR(cbor_put_uint(out, gen_uint()));
}

static int generate(const char *seed_arg, const char *count_arg)
{
	struct buf out;
	char *end;
	uint64_t seed, count;

	errno = 0;
	seed = strtoull(seed_arg, &end, 0);
	if (errno || *end || !*seed_arg)
		die("SEED must be an unsigned integer");
	count = strtoull(count_arg, &end, 0);
	if (errno || *end || !*count_arg)
		die("COUNT must be an unsigned integer");

	/* A splitmix64 step spreads small seeds over all bits, and the low
	 * bit keeps the state away from zero, which xorshift cannot leave. */
	seed += 0x9e3779b97f4a7c15ull;
	seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;
	seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebull;
	rng_state = (seed ^ (seed >> 31)) | 1;

	buf_init(&out);
	for (uint64_t i = 0; i < count; i++) {
		buf_reset(&out);
		if (rng_below(50) == 0)
			gen_deep(&out);
		else
			gen_value(&out, 0);
		write_record(&out);
	}
	buf_free(&out);
	if (fflush(stdout) != 0)
		die("write to stdout failed");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return roundtrip();
	if (argc == 4 && strcmp(argv[1], "--generate") == 0)
		return generate(argv[2], argv[3]);
	fprintf(stderr, "usage: cbor-roundtrip\n"
			"       cbor-roundtrip --generate SEED COUNT\n");
	return 1;
}
