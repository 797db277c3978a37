/* A writer of "newc" cpio archives, the format the kernel unpacks as an
 * initramfs. */
#ifndef MSB_GUEST_CPIO_H
#define MSB_GUEST_CPIO_H

#include <stddef.h>
#include <stdint.h>

struct cpio_writer {
	int fd;
	uint32_t next_ino;
	int error;
};

int cpio_open(struct cpio_writer *w, const char *path);
int cpio_add_dir(struct cpio_writer *w, const char *name, unsigned mode);
int cpio_add_char_device(struct cpio_writer *w, const char *name, unsigned mode, unsigned major, unsigned minor);
int cpio_add_file_data(struct cpio_writer *w, const char *name, unsigned mode, const void *data, size_t len);
/* Copies the file at src into the archive as name. */
int cpio_add_file(struct cpio_writer *w, const char *name, unsigned mode, const char *src);
/* Writes the trailer and closes the file. */
int cpio_finish(struct cpio_writer *w);
void cpio_abort(struct cpio_writer *w);

#endif
