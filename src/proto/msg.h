/* Typed messages of the agent protocol and their frame encoding.
 *
 * A frame body is the CBOR map {v: generation, t: type name, p: payload},
 * where the payload is itself CBOR inside a byte string. Structs are maps
 * keyed by field name in the order of the protocol; an absent optional field
 * is written as null, and a reader accepts null, a missing key, and keys it
 * does not know.
 *
 * Decoded text and byte fields are spans into the frame, so the frame must
 * outlive the decoded message. Arrays are allocated; msg_free() releases
 * them.
 */
#ifndef MSB_PROTO_MSG_H
#define MSB_PROTO_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The protocol generation this implementation speaks (microsandbox 0.5.3). */
#define MSG_GENERATION 3

/* Window size of a terminal session when the request names none. */
#define MSG_DEFAULT_ROWS 24
#define MSG_DEFAULT_COLS 80

enum msg_type {
	MSG_UNKNOWN = 0,
	MSG_INIT_RESOLVED,
	MSG_INIT_ACK,
	MSG_READY,
	MSG_SHUTDOWN,
	MSG_CLOCK_SYNC,
	MSG_CLIENT_DISCONNECTED,
	MSG_PING,
	MSG_PONG,
	MSG_TOUCH,
	MSG_TOUCHED,
	MSG_ERROR,
	MSG_EXEC_REQUEST,
	MSG_EXEC_STARTED,
	MSG_EXEC_STDIN,
	MSG_EXEC_STDIN_ERROR,
	MSG_EXEC_STDOUT,
	MSG_EXEC_STDERR,
	MSG_EXEC_EXITED,
	MSG_EXEC_FAILED,
	MSG_EXEC_RESIZE,
	MSG_EXEC_SIGNAL,
	MSG_FS_REQUEST,
	MSG_FS_DATA,
	MSG_FS_RESPONSE,
	/* msb extensions: flow control of one client's sessions, and of a
	 * session's stdin. */
	MSG_FLOW_PAUSE,
	MSG_FLOW_RESUME,
	MSG_EXEC_STDIN_CONSUMED,
	MSG_TYPE_COUNT,
};

struct opt_u32 {
	bool set;
	uint32_t v;
};
struct opt_u64 {
	bool set;
	uint64_t v;
};
struct opt_i32 {
	bool set;
	int32_t v;
};
struct opt_i64 {
	bool set;
	int64_t v;
};

struct msg_init_resolved {
	uint32_t uid;
	uint32_t gid;
};

/* Guest CLOCK_BOOTTIME stamps: agent start, init done, ready. */
struct msg_ready {
	uint64_t boot_time_ns;
	uint64_t init_time_ns;
	uint64_t ready_time_ns;
	struct span agent_version;
};

struct msg_clock_sync {
	uint64_t unix_time_nanos;
};

/* core.relay.client.disconnected, msb.flow.pause and msb.flow.resume. */
struct msg_client_disconnected {
	uint32_t id_start;
	uint32_t id_end_exclusive;
};

struct msg_touched {
	uint64_t activity_seq;
};

struct msg_error {
	struct span kind;
	struct span message;
	struct span offending_type;
};

struct msg_rlimit {
	struct span resource;
	uint64_t soft;
	uint64_t hard;
};

struct msg_exec_request {
	struct span cmd;
	struct span *args;
	size_t n_args;
	struct span *env; /* "KEY=VALUE" */
	size_t n_env;
	struct span cwd;
	struct span user;
	bool tty;
	uint16_t rows;
	uint16_t cols;
	struct msg_rlimit *rlimits;
	size_t n_rlimits;
};

struct msg_exec_started {
	uint32_t pid;
};

/* core.exec.stdin, core.exec.stdout, core.exec.stderr and core.fs.data. */
struct msg_data {
	struct span data;
};

/* msb.exec.stdin.consumed: how many stdin bytes of the session the process
 * has taken so far, in all. */
struct msg_exec_stdin_consumed {
	uint64_t bytes;
};

struct msg_exec_stdin_error {
	struct opt_i32 err;
	struct span errno_name;
	struct span message;
};

/* code is -1 when a signal killed the process. signal is an msb extension
 * that names that signal; it is written only when set, so frames of plain
 * exits are those of the base protocol. */
struct msg_exec_exited {
	int32_t code;
	struct opt_i32 signal;
};

struct msg_exec_failed {
	struct span kind;
	struct opt_i32 err;
	struct span errno_name;
	struct span message;
	struct span stage;
};

struct msg_exec_resize {
	uint16_t rows;
	uint16_t cols;
};

struct msg_exec_signal {
	int32_t signal;
};

/* File system operations (generation 2). */
enum fs_op {
	FS_OP_REALPATH,
	FS_OP_STAT,
	FS_OP_SETSTAT,
	FS_OP_LIST,
	FS_OP_READLINK,
	FS_OP_SYMLINK,
	FS_OP_MKDIR,
	FS_OP_REMOVE,
	FS_OP_REMOVEDIR,
	FS_OP_COPY,
	FS_OP_RENAME,
	FS_OP_OPENFILE,
	FS_OP_OPENDIR,
	FS_OP_CLOSEHANDLE,
	FS_OP_READ,
	FS_OP_WRITE,
	FS_OP_READDIR,
	FS_OP_FSTAT,
	FS_OP_FSETSTAT,
	FS_OP_COUNT,
};

/* Times are seconds since the Unix epoch. */
struct fs_attrs {
	struct opt_u32 mode;
	struct opt_u32 uid;
	struct opt_u32 gid;
	struct opt_u64 size;
	struct opt_i64 atime;
	struct opt_i64 mtime;
};

struct fs_open_options {
	bool read;
	bool write;
	bool append;
	bool create;
	bool truncate;
	bool create_new;
	struct opt_u32 mode;
};

/* One request; which fields are meaningful depends on op:
 *   path: RealPath Stat SetStat List ReadLink Mkdir Remove RemoveDir
 *         OpenFile OpenDir
 *   target, link_path: Symlink        src, dst: Copy Rename
 *   handle: CloseHandle Read Write ReadDir FStat FSetStat
 *   offset, len: Read Write           limit: ReadDir */
struct msg_fs_request {
	enum fs_op op;
	struct span path;
	struct span target;
	struct span link_path;
	struct span src;
	struct span dst;
	bool follow_symlink;
	bool recursive;
	struct opt_u32 mode;
	struct fs_attrs attrs;
	struct fs_open_options options;
	uint64_t handle;
	uint64_t offset;
	struct opt_u64 len;
	struct opt_u32 limit;
};

enum fs_kind {
	FS_KIND_FILE,
	FS_KIND_DIR,
	FS_KIND_SYMLINK,
	FS_KIND_OTHER,
};

struct fs_entry {
	struct span path;
	enum fs_kind kind;
	uint64_t size;
	uint32_t mode;
	struct opt_i64 modified;
	uint32_t uid;
	uint32_t gid;
	struct opt_i64 atime;
	struct opt_i64 mtime;
};

enum fs_data_kind {
	FS_DATA_NONE,
	FS_DATA_STAT,
	FS_DATA_LIST,
	FS_DATA_HANDLE,
	FS_DATA_PATH,
};

/* err and errno_name are msb extensions, written only when err is set. */
struct msg_fs_response {
	bool ok;
	struct span error;
	enum fs_data_kind data_kind;
	struct fs_entry stat;
	struct fs_entry *list;
	size_t n_list;
	uint64_t handle;
	struct span path;
	struct opt_i32 err;
	struct span errno_name;
};

struct msg {
	enum msg_type type;
	uint32_t id;
	uint8_t flags;
	uint32_t version;
	struct span type_name; /* as received; the only field for MSG_UNKNOWN */
	union {
		struct msg_init_resolved init_resolved;
		struct msg_ready ready;
		struct msg_clock_sync clock_sync;
		struct msg_client_disconnected client_disconnected;
		struct msg_touched touched;
		struct msg_error error;
		struct msg_exec_request exec_request;
		struct msg_exec_started exec_started;
		struct msg_data data;
		struct msg_exec_stdin_error exec_stdin_error;
		struct msg_exec_stdin_consumed exec_stdin_consumed;
		struct msg_exec_exited exec_exited;
		struct msg_exec_failed exec_failed;
		struct msg_exec_resize exec_resize;
		struct msg_exec_signal exec_signal;
		struct msg_fs_request fs_request;
		struct msg_fs_response fs_response;
	} u;
};

/* Wire name ("core.exec.stdout"), or NULL for MSG_UNKNOWN. */
const char *msg_type_name(enum msg_type type);
enum msg_type msg_type_from_name(struct span name);
/* The frame flags that the protocol ties to a type. */
uint8_t msg_type_flags(enum msg_type type);
const char *fs_op_name(enum fs_op op);
const char *fs_kind_name(enum fs_kind kind);

/* Appends one whole frame for m to out. m->id is the frame id, the flags
 * follow from m->type, and m->version (0 means MSG_GENERATION) is the
 * generation sent. Returns 0, -EINVAL for a message that cannot be encoded,
 * -EMSGSIZE when the frame would exceed the maximum, or -ENOMEM. */
int msg_encode(struct buf *out, const struct msg *m);

/* Decodes one whole frame (header included). Returns 0, -EBADMSG when the
 * frame or its CBOR is malformed, or -EPROTO when the payload does not match
 * its type (a missing required field, a wrong type, a value out of range).
 * An unknown type name decodes to MSG_UNKNOWN with type_name set. */
int msg_decode(const uint8_t *frame, size_t frame_len, struct msg *m);

/* Reads only the type name of a whole frame, for routers that must tell
 * exec sessions from others without decoding payloads. Returns MSG_UNKNOWN
 * for a frame it cannot read. */
enum msg_type msg_peek_type(const uint8_t *frame, size_t frame_len);

/* Releases the arrays that msg_decode() allocated. */
void msg_free(struct msg *m);

/* Encodes a stdout, stderr, stdin or fs.data frame straight from a buffer,
 * without building a struct msg. */
int msg_encode_data(struct buf *out, enum msg_type type, uint32_t id, const void *data, size_t len);

/* The maximum number of bytes that come before the data in such a frame. */
#define MSG_DATA_PREFIX_MAX 128
/* Writes the bytes that come before len bytes of data in such a frame
 * (header, body and payload heads) to out, which has MSG_DATA_PREFIX_MAX
 * bytes of room; returns their count, or -EINVAL or -EMSGSIZE. Lets a
 * reader put data straight into an output buffer and frame it after. */
int msg_put_data_prefix(uint8_t *out, enum msg_type type, uint32_t id, size_t len);

#endif
