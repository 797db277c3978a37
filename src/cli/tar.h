/* Tar streams on a file descriptor, in fixed-size blocks so that memory
 * stays bounded whatever the member sizes.
 *
 * The writer produces POSIX ustar, with a pax extended header ('x') before
 * a member whose path or link target exceeds 100 bytes or whose size,
 * mtime, uid or gid does not fit its octal field. The reader takes ustar,
 * GNU and v7 headers, pax 'x' headers (path, linkpath, size, mtime, uid,
 * gid) and GNU 'L'/'K' long names. It skips pax global headers ('g').
 */
#ifndef MSB_CLI_TAR_H
#define MSB_CLI_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msb/msb.h"

#define TAR_BLOCK 512
/* Maximum length of a member path or link target, without the NUL. */
#define TAR_PATH_MAX 4095

/* Type flags of members, as in the header. */
#define TAR_TYPE_FILE '0'
#define TAR_TYPE_HARDLINK '1'
#define TAR_TYPE_SYMLINK '2'
#define TAR_TYPE_CHAR '3'
#define TAR_TYPE_BLOCK '4'
#define TAR_TYPE_DIR '5'
#define TAR_TYPE_FIFO '6'

struct tar_member {
	char type; /* TAR_TYPE_*; the reader maps '\0' and '7' to TAR_TYPE_FILE */
	/* path and link may hold NUL bytes when a pax record carries them:
	 * the lengths are what counts. */
	char path[TAR_PATH_MAX + 1];
	size_t path_len;
	char link[TAR_PATH_MAX + 1];
	size_t link_len;
	uint32_t mode; /* permission bits, 07777 */
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime; /* Unix seconds */
};

struct tar_reader {
	int fd;
	uint64_t offset;    /* bytes consumed so far, for messages */
	uint64_t data_left; /* data of the current member not yet read */
	uint64_t pad_left;  /* padding after that data */
};

struct tar_writer {
	int fd;
};

void tar_reader_init(struct tar_reader *r, int fd);
/* Reads the next member's header(s), skipping what is left of the
 * previous member. Returns 1 with *m filled, 0 at the end of the archive,
 * or -errno. */
int tar_read_next(struct tar_reader *r, struct tar_member *m, msb_error *err);
/* Reads up to cap bytes of the current member's data: returns the count,
 * 0 at the end of the data, or -errno. */
long tar_read_data(struct tar_reader *r, void *buf, size_t cap, msb_error *err);

void tar_writer_init(struct tar_writer *w, int fd);
/* Writes the header of m, after a pax header when a field needs one. */
int tar_write_header(struct tar_writer *w, const struct tar_member *m, msb_error *err);
int tar_write_data(struct tar_writer *w, const void *data, size_t len, msb_error *err);
/* Writes n zero bytes: the padding after a member's data of size bytes
 * when n is tar_padding(size), or the rest of data that came up short. */
int tar_write_zeros(struct tar_writer *w, uint64_t n, msb_error *err);
/* Writes the two zero blocks that end an archive. */
int tar_write_end(struct tar_writer *w, msb_error *err);

static inline uint64_t tar_padding(uint64_t size)
{
	return (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
}

#endif
