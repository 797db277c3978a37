/* exec.log: the output of every exec session as JSON lines,
 *
 *   {"t": "2026-12-04T20:45:00.123Z", "s": "stdout", "d": "text", "id": 33554433, "seq": 7}
 *
 * "id" is the session's protocol id, which clients reuse; "seq" numbers
 * the sessions of the sandbox process in the order they started, so lines
 * of different sessions stay distinct.
 * where "s" is "stdout", "stderr", "output" (a terminal's merged output) or
 * "system" (a session's start and end markers). Output is text: a UTF-8
 * character split between two chunks is joined before it is written, and
 * bytes that are not UTF-8 become U+FFFD. The file rotates like
 * runtime.log.
 *
 * The log is for reading, not for moving data: each stream of a session is
 * logged up to EXEC_LOG_STREAM_MAX_BYTES, and a "system" line says where
 * the rest was left out. Logging every byte would cost the sandbox process
 * more CPU than relaying it.
 */
#ifndef MSB_RUNTIME_EXEC_LOG_H
#define MSB_RUNTIME_EXEC_LOG_H

#include <stddef.h>
#include <stdint.h>

#define EXEC_LOG_STREAM_MAX_BYTES (1024 * 1024)

struct exec_log;

struct exec_log *exec_log_open(const char *path);
void exec_log_close(struct exec_log *el);

/* A core.exec.request frame from a client. */
void exec_log_request(struct exec_log *el, const uint8_t *frame, size_t len);
/* A frame from the guest for an exec session: stdout, stderr, exited,
 * failed. Frames of sessions the log never saw start are ignored. */
void exec_log_guest_frame(struct exec_log *el, const uint8_t *frame, size_t len);
/* The client of these sessions went away: their end is not coming. */
void exec_log_forget(struct exec_log *el, uint32_t id);

#endif
