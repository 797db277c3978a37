/* boot-error.json: why a sandbox did not become ready, written atomically
 * into its directory, for users and tools:
 *
 *   {"stage": "kernel", "errno": null, "message": "...", "time": "...",
 *    "kernel_log": "/home/u/.msb/sandboxes/x/kernel.log"}
 *
 * Stages: setup, assets, engine (QEMU failed), kernel (the guest stopped
 * or panicked), agent (the agent reported an error), relay, timeout. */
#ifndef MSB_RUNTIME_BOOT_ERROR_H
#define MSB_RUNTIME_BOOT_ERROR_H

#include <stdbool.h>
#include <stddef.h>

int boot_error_write(const char *dir, const char *kernel_log, const char *stage, int err, const char *message);
/* Finds the most telling line of a kernel log: a panic, else the agent's
 * first error. Sets *stage to "kernel" or "agent". */
bool boot_error_kernel_reason(const char *kernel_log, char *out, size_t out_len, const char **stage);

#endif
