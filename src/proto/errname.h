#ifndef MSB_PROTO_ERRNAME_H
#define MSB_PROTO_ERRNAME_H

/* Returns "ENOENT" for ENOENT (or -ENOENT), NULL for a value not in the table. */
const char *errno_name(int value);

#endif
