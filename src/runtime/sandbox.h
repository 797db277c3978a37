/* The sandbox process (`msb sandbox`): owns one VM from boot to stop.
 *
 * It starts the engine, completes the guest's boot handshake, relays the
 * agent channel to clients on $MSB_HOME/sandboxes/NAME/agent.sock, keeps
 * the guest clock in step, and records why the sandbox stopped. When the
 * guest does not become ready it writes boot-error.json and exits non-zero,
 * keeping the logs.
 */
#ifndef MSB_RUNTIME_SANDBOX_H
#define MSB_RUNTIME_SANDBOX_H

#define SANDBOX_DEFAULT_CPUS 1
#define SANDBOX_DEFAULT_MEMORY_MIB 512
#define SANDBOX_MAX_CPUS 64
#define SANDBOX_MIN_MEMORY_MIB 128
/* How long the guest may take to send core.ready (TCG boots take seconds;
 * a loaded CI machine more). */
#define SANDBOX_DEFAULT_BOOT_TIMEOUT_S 60
/* How long a guest may take to power off after core.shutdown before the
 * VM is stopped hard. */
#define SANDBOX_STOP_TIMEOUT_MS 10000

/* Exit statuses of the sandbox process. */
#define SANDBOX_EXIT_OK 0
#define SANDBOX_EXIT_CRASHED 1
#define SANDBOX_EXIT_BOOT_FAILED 2
#define SANDBOX_EXIT_USAGE 64

/* Entry point of `msb sandbox ARGS`; returns the process's exit status. */
int sandbox_main(int argc, char **argv);

#endif
