/* Tar reader and writer: ustar headers, pax extended headers, GNU long
 * names. */
#include "tar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/err.h"
#include "../base/files.h"

/* Largest pax header or GNU long name this reader accepts; the data sits
 * in memory while it is parsed. */
#define TAR_META_MAX (1024 * 1024)
/* Largest value of the 12-byte octal fields (size, mtime) and of the
 * 8-byte ones (mode, uid, gid). */
#define TAR_OCTAL12_MAX 077777777777ULL
#define TAR_OCTAL8_MAX 07777777ULL

/* Header field offsets and lengths (POSIX ustar). */
#define H_NAME 0
#define H_MODE 100
#define H_UID 108
#define H_GID 116
#define H_SIZE 124
#define H_MTIME 136
#define H_CHKSUM 148
#define H_TYPE 156
#define H_LINKNAME 157
#define H_MAGIC 257
#define H_VERSION 263
#define H_DEVMAJOR 329
#define H_DEVMINOR 337
#define H_PREFIX 345

/* ---- Reading ---- */

/* Values from pax headers and GNU long names for the next member. */
struct tar_override {
	bool path, link, size, mtime, uid, gid;
	char path_value[TAR_PATH_MAX + 1];
	size_t path_len;
	char link_value[TAR_PATH_MAX + 1];
	size_t link_len;
	uint64_t size_value;
	int64_t mtime_value;
	uint32_t uid_value, gid_value;
};

void tar_reader_init(struct tar_reader *r, int fd)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
}

/* Reads exactly len bytes; -EIO at an early end of the stream. */
static int read_exact(struct tar_reader *r, void *buf, size_t len, msb_error *err)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(r->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(err, -errno, "read the tar stream at byte %" PRIu64, r->offset);
		if (n == 0)
			return err_set(err, -EIO, "the tar stream ends in the middle of a member, at byte %" PRIu64,
				       r->offset);
		p += n;
		len -= (size_t)n;
		r->offset += (uint64_t)n;
	}
	return 0;
}

static bool all_zero(const unsigned char *h)
{
	for (size_t i = 0; i < TAR_BLOCK; i++)
		if (h[i])
			return false;
	return true;
}

/* Reads a header block: 1, or 0 when the stream ends before it (an
 * archive without its end blocks) or the block is an end block. */
static int read_header_block(struct tar_reader *r, unsigned char *h, msb_error *err)
{
	ssize_t n;
	int rc;

	do
		n = read(r->fd, h, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return err_sys(err, -errno, "read the tar stream at byte %" PRIu64, r->offset);
	if (n == 0)
		return 0;
	r->offset++;
	rc = read_exact(r, h + 1, TAR_BLOCK - 1, err);
	if (rc < 0)
		return rc;
	return all_zero(h) ? 0 : 1;
}

static int skip_bytes(struct tar_reader *r, uint64_t n, msb_error *err)
{
	char scratch[16 * TAR_BLOCK];

	while (n > 0) {
		size_t chunk = n < sizeof(scratch) ? (size_t)n : sizeof(scratch);
		int rc = read_exact(r, scratch, chunk, err);

		if (rc < 0)
			return rc;
		n -= chunk;
	}
	return 0;
}

/* Parses a numeric field: octal digits (space or NUL padded), or GNU
 * base-256 when the first byte has its high bit set. */
static int parse_number(const unsigned char *field, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (field[0] & 0x80) {
		if (field[0] != 0x80)
			return -EINVAL; /* negative base-256 */
		for (i = 1; i < len; i++) {
			if (v >> 56)
				return -ERANGE;
			v = v << 8 | field[i];
		}
		*out = v;
		return 0;
	}
	while (i < len && field[i] == ' ')
		i++;
	for (; i < len && field[i] >= '0' && field[i] <= '7'; i++) {
		if (v >> 61)
			return -ERANGE;
		v = v << 3 | (uint64_t)(field[i] - '0');
	}
	if (i < len && field[i] != ' ' && field[i] != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool checksum_ok(const unsigned char *h)
{
	uint64_t stored;
	long unsigned_sum = 0, signed_sum = 0;

	if (parse_number(h + H_CHKSUM, 8, &stored) < 0)
		return false;
	for (size_t i = 0; i < TAR_BLOCK; i++) {
		bool in_field = i >= H_CHKSUM && i < H_CHKSUM + 8;

		unsigned_sum += in_field ? ' ' : h[i];
		signed_sum += in_field ? ' ' : (signed char)h[i];
	}
	/* Some old writers summed signed chars. */
	return (long)stored == unsigned_sum || (long)stored == signed_sum;
}

/* Parses a decimal pax value, with an optional fraction that is dropped. */
static int parse_decimal(const char *s, size_t len, bool allow_negative, int64_t *out)
{
	bool negative = false;
	int64_t v = 0;
	size_t i = 0;

	if (allow_negative && len > 0 && s[0] == '-') {
		negative = true;
		i++;
	}
	if (i == len || s[i] < '0' || s[i] > '9')
		return -EINVAL;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (INT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (s[i] - '0');
	}
	if (i < len && s[i] != '.')
		return -EINVAL;
	*out = negative ? -v : v;
	return 0;
}

static int set_text(char *out, size_t *out_len, const char *value, size_t len)
{
	if (len > TAR_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(out, value, len);
	out[len] = 0;
	*out_len = len;
	return 0;
}

/* Applies one pax record "key=value"; unknown keys are ignored. */
static int apply_pax_record(struct tar_override *ov, const char *key, size_t key_len, const char *value,
			    size_t len)
{
	int64_t n;
	int rc = 0;

#define KEY_IS(k) (key_len == sizeof(k) - 1 && memcmp(key, k, key_len) == 0)
	if (KEY_IS("path")) {
		rc = set_text(ov->path_value, &ov->path_len, value, len);
		ov->path = rc == 0;
	} else if (KEY_IS("linkpath")) {
		rc = set_text(ov->link_value, &ov->link_len, value, len);
		ov->link = rc == 0;
	} else if (KEY_IS("size")) {
		rc = parse_decimal(value, len, false, &n);
		ov->size_value = (uint64_t)n;
		ov->size = rc == 0;
	} else if (KEY_IS("mtime")) {
		rc = parse_decimal(value, len, true, &n);
		ov->mtime_value = n;
		ov->mtime = rc == 0;
	} else if (KEY_IS("uid")) {
		rc = parse_decimal(value, len, false, &n);
		ov->uid_value = (uint32_t)n;
		ov->uid = rc == 0 && n <= UINT32_MAX;
	} else if (KEY_IS("gid")) {
		rc = parse_decimal(value, len, false, &n);
		ov->gid_value = (uint32_t)n;
		ov->gid = rc == 0 && n <= UINT32_MAX;
	}
#undef KEY_IS
	return rc;
}

/* Parses pax records "LEN KEY=VALUE\n", where LEN counts the whole record. */
static int parse_pax(struct tar_override *ov, const char *data, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *rec = data + pos, *space, *eq;
		size_t rec_len = 0, i = 0;

		while (pos + i < len && rec[i] >= '0' && rec[i] <= '9' && rec_len < len)
			rec_len = rec_len * 10 + (size_t)(rec[i++] - '0');
		space = rec + i;
		if (i == 0 || rec_len > len - pos || rec_len <= i + 1 || *space != ' ' || rec[rec_len - 1] != '\n')
			return -EINVAL;
		eq = memchr(space + 1, '=', (size_t)(rec + rec_len - 1 - (space + 1)));
		if (!eq)
			return -EINVAL;
		if (apply_pax_record(ov, space + 1, (size_t)(eq - space - 1), eq + 1,
				     (size_t)(rec + rec_len - 1 - (eq + 1))) < 0)
			return -EINVAL;
		pos += rec_len;
	}
	return 0;
}

/* Reads the data of a pax header or GNU long name into memory. */
static int read_meta(struct tar_reader *r, uint64_t size, char **out, msb_error *err)
{
	char *data;
	int rc;

	if (size > TAR_META_MAX)
		return err_set(err, -EFBIG, "a tar extended header at byte %" PRIu64 " has %" PRIu64
			       " bytes; at most %d are accepted", r->offset, size, TAR_META_MAX);
	data = malloc((size_t)size + 1);
	if (!data)
		return err_set(err, -ENOMEM, "out of memory");
	rc = read_exact(r, data, (size_t)size, err);
	if (rc == 0)
		rc = skip_bytes(r, tar_padding(size), err);
	if (rc < 0) {
		free(data);
		return rc;
	}
	data[size] = 0;
	*out = data;
	return 0;
}

/* Handles a header that describes the next member ('x', 'L', 'K') or
 * nothing ('g'). */
static int read_extension(struct tar_reader *r, char type, uint64_t size, struct tar_override *ov, msb_error *err)
{
	uint64_t at = r->offset - TAR_BLOCK;
	char *data = NULL;
	int rc = read_meta(r, size, &data, err);

	if (rc < 0)
		return rc;
	if (type == 'x' && parse_pax(ov, data, (size_t)size) < 0)
		rc = err_set(err, -EINVAL, "invalid pax extended header at byte %" PRIu64, at);
	if (type == 'L' || type == 'K') {
		/* The name is NUL-terminated inside the data. */
		size_t len = strnlen(data, (size_t)size);

		rc = set_text(type == 'L' ? ov->path_value : ov->link_value,
			      type == 'L' ? &ov->path_len : &ov->link_len, data, len);
		if (rc < 0)
			rc = err_set(err, rc, "a GNU long name at byte %" PRIu64 " is longer than %d bytes", at,
				     TAR_PATH_MAX);
		else if (type == 'L')
			ov->path = true;
		else
			ov->link = true;
	}
	free(data);
	return rc;
}

/* Copies a NUL-padded header field. */
static size_t copy_field(char *out, const unsigned char *field, size_t len)
{
	size_t n = strnlen((const char *)field, len);

	memcpy(out, field, n);
	out[n] = 0;
	return n;
}

static int fill_member(const unsigned char *h, struct tar_member *m)
{
	uint64_t mode, uid, gid, size, mtime;

	memset(m, 0, sizeof(*m));
	m->type = (char)h[H_TYPE];
	if (m->type == 0 || m->type == '7')
		m->type = TAR_TYPE_FILE;
	if (memcmp(h + H_MAGIC, "ustar\0", 6) == 0 && h[H_PREFIX]) {
		/* POSIX ustar splits long names: prefix '/' name. */
		size_t n = copy_field(m->path, h + H_PREFIX, 155);

		m->path[n++] = '/';
		m->path_len = n + copy_field(m->path + n, h + H_NAME, 100);
	} else {
		m->path_len = copy_field(m->path, h + H_NAME, 100);
	}
	m->link_len = copy_field(m->link, h + H_LINKNAME, 100);
	if (parse_number(h + H_MODE, 8, &mode) < 0 || parse_number(h + H_UID, 8, &uid) < 0 ||
	    parse_number(h + H_GID, 8, &gid) < 0 || parse_number(h + H_SIZE, 12, &size) < 0 ||
	    parse_number(h + H_MTIME, 12, &mtime) < 0)
		return -EINVAL;
	m->mode = (uint32_t)(mode & 07777);
	m->uid = (uint32_t)uid;
	m->gid = (uint32_t)gid;
	m->size = size;
	m->mtime = (int64_t)mtime;
	return 0;
}

static void apply_override(struct tar_member *m, const struct tar_override *ov)
{
	if (ov->path) {
		memcpy(m->path, ov->path_value, ov->path_len + 1);
		m->path_len = ov->path_len;
	}
	if (ov->link) {
		memcpy(m->link, ov->link_value, ov->link_len + 1);
		m->link_len = ov->link_len;
	}
	if (ov->size)
		m->size = ov->size_value;
	if (ov->mtime)
		m->mtime = ov->mtime_value;
	if (ov->uid)
		m->uid = ov->uid_value;
	if (ov->gid)
		m->gid = ov->gid_value;
}

/* Links, devices, fifos and directories carry no data in the stream. */
static bool has_data(char type)
{
	return !strchr("123456", type);
}

int tar_read_next(struct tar_reader *r, struct tar_member *m, msb_error *err)
{
	static struct tar_override ov;
	unsigned char h[TAR_BLOCK];
	int rc = skip_bytes(r, r->data_left + r->pad_left, err);

	if (rc < 0)
		return rc;
	r->data_left = r->pad_left = 0;
	memset(&ov, 0, sizeof(ov));
	for (;;) {
		uint64_t at = r->offset;

		rc = read_header_block(r, h, err);
		if (rc <= 0)
			return rc;
		if (!checksum_ok(h))
			return err_set(err, -EINVAL, "invalid tar header at byte %" PRIu64 " (checksum mismatch)", at);
		if (fill_member(h, m) < 0)
			return err_set(err, -EINVAL, "invalid numeric field in the tar header at byte %" PRIu64, at);
		if (strchr("xgLK", m->type)) {
			rc = m->type == 'g' ? skip_bytes(r, m->size + tar_padding(m->size), err)
					    : read_extension(r, m->type, m->size, &ov, err);
			if (rc < 0)
				return rc;
			continue;
		}
		apply_override(m, &ov);
		if (has_data(m->type)) {
			r->data_left = m->size;
			r->pad_left = tar_padding(m->size);
		}
		return 1;
	}
}

long tar_read_data(struct tar_reader *r, void *buf, size_t cap, msb_error *err)
{
	size_t n = r->data_left < cap ? (size_t)r->data_left : cap;
	int rc;

	if (n == 0)
		return 0;
	rc = read_exact(r, buf, n, err);
	if (rc < 0)
		return rc;
	r->data_left -= n;
	return (long)n;
}

/* ---- Writing ---- */

void tar_writer_init(struct tar_writer *w, int fd)
{
	w->fd = fd;
}

static int write_bytes(struct tar_writer *w, const void *data, size_t len, msb_error *err)
{
	int rc = files_write_full(w->fd, data, len);

	return rc < 0 ? err_sys(err, rc, "write the tar stream") : 0;
}

int tar_write_data(struct tar_writer *w, const void *data, size_t len, msb_error *err)
{
	return write_bytes(w, data, len, err);
}

int tar_write_zeros(struct tar_writer *w, uint64_t n, msb_error *err)
{
	static const char zeros[16 * TAR_BLOCK];

	while (n > 0) {
		size_t chunk = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		int rc = write_bytes(w, zeros, chunk, err);

		if (rc < 0)
			return rc;
		n -= chunk;
	}
	return 0;
}

int tar_write_end(struct tar_writer *w, msb_error *err)
{
	return tar_write_zeros(w, 2 * TAR_BLOCK, err);
}

static void put_octal(unsigned char *field, size_t len, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof(text), "%0*" PRIo64, (int)len - 1, v);
	memcpy(field, text, len - 1);
	field[len - 1] = 0;
}

static void finish_header(unsigned char *h)
{
	unsigned sum = 0;
	char text[8];

	memcpy(h + H_MAGIC, "ustar\0", 6);
	memcpy(h + H_VERSION, "00", 2);
	put_octal(h + H_DEVMAJOR, 8, 0);
	put_octal(h + H_DEVMINOR, 8, 0);
	memset(h + H_CHKSUM, ' ', 8);
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += h[i];
	snprintf(text, sizeof(text), "%06o", sum);
	memcpy(h + H_CHKSUM, text, 7); /* six digits, NUL, and the space kept */
}

/* Appends the record "LEN key=value\n"; LEN counts the record itself. */
static size_t add_pax_record(char *out, size_t used, size_t cap, const char *key, const char *value, size_t len)
{
	size_t body = 1 + strlen(key) + 1 + len + 1, total = body + 1;
	char digits[24];

	/* Grow the count until it includes its own digits. */
	while ((size_t)snprintf(digits, sizeof(digits), "%zu", total) + body != total)
		total = (size_t)snprintf(digits, sizeof(digits), "%zu", total) + body;
	if (used + total > cap)
		return used;
	used += (size_t)snprintf(out + used, cap - used, "%s %s=", digits, key);
	memcpy(out + used, value, len);
	used += len;
	out[used++] = '\n';
	return used;
}

static size_t add_pax_number(char *out, size_t used, size_t cap, const char *key, int64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%" PRId64, v);

	return add_pax_record(out, used, cap, key, text, (size_t)n);
}

/* Builds the pax records that m needs; returns their length (0: none). */
static size_t build_pax(const struct tar_member *m, char *out, size_t cap)
{
	size_t used = 0;

	if (m->path_len > 100)
		used = add_pax_record(out, used, cap, "path", m->path, m->path_len);
	if (m->link_len > 100)
		used = add_pax_record(out, used, cap, "linkpath", m->link, m->link_len);
	if (m->size > TAR_OCTAL12_MAX)
		used = add_pax_number(out, used, cap, "size", (int64_t)m->size);
	if (m->mtime < 0 || (uint64_t)m->mtime > TAR_OCTAL12_MAX)
		used = add_pax_number(out, used, cap, "mtime", m->mtime);
	if (m->uid > TAR_OCTAL8_MAX)
		used = add_pax_number(out, used, cap, "uid", m->uid);
	if (m->gid > TAR_OCTAL8_MAX)
		used = add_pax_number(out, used, cap, "gid", m->gid);
	return used;
}

static int write_pax(struct tar_writer *w, const char *records, size_t len, msb_error *err)
{
	unsigned char h[TAR_BLOCK];
	int rc;

	memset(h, 0, sizeof(h));
	memcpy(h + H_NAME, "././@PaxHeader", sizeof("././@PaxHeader") - 1);
	put_octal(h + H_MODE, 8, 0644);
	put_octal(h + H_UID, 8, 0);
	put_octal(h + H_GID, 8, 0);
	put_octal(h + H_SIZE, 12, len);
	put_octal(h + H_MTIME, 12, 0);
	h[H_TYPE] = 'x';
	finish_header(h);
	rc = write_bytes(w, h, sizeof(h), err);
	if (rc == 0)
		rc = write_bytes(w, records, len, err);
	if (rc == 0)
		rc = tar_write_zeros(w, tar_padding(len), err);
	return rc;
}

int tar_write_header(struct tar_writer *w, const struct tar_member *m, msb_error *err)
{
	/* path and link, their keys and counts: well under this. */
	static char records[2 * TAR_PATH_MAX + 512];
	unsigned char h[TAR_BLOCK];
	size_t pax_len = build_pax(m, records, sizeof(records));
	int rc;

	if (pax_len > 0) {
		rc = write_pax(w, records, pax_len, err);
		if (rc < 0)
			return rc;
	}
	memset(h, 0, sizeof(h));
	/* A name too long for the field is cut; the pax path replaces it. */
	memcpy(h + H_NAME, m->path, m->path_len < 100 ? m->path_len : 100);
	memcpy(h + H_LINKNAME, m->link, m->link_len < 100 ? m->link_len : 100);
	put_octal(h + H_MODE, 8, m->mode & 07777);
	put_octal(h + H_UID, 8, m->uid > TAR_OCTAL8_MAX ? 0 : m->uid);
	put_octal(h + H_GID, 8, m->gid > TAR_OCTAL8_MAX ? 0 : m->gid);
	put_octal(h + H_SIZE, 12, m->size > TAR_OCTAL12_MAX ? 0 : m->size);
	put_octal(h + H_MTIME, 12, m->mtime < 0 || (uint64_t)m->mtime > TAR_OCTAL12_MAX ? 0 : (uint64_t)m->mtime);
	h[H_TYPE] = (unsigned char)m->type;
	finish_header(h);
	return write_bytes(w, h, sizeof(h), err);
}
