/* The QEMU engine: a microvm machine with PCIe, a virtio-serial port for
 * the agent, virtio-blk disks for the root image and the upper, and the
 * serial console in a file. $MSB_QEMU overrides the binary. */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/err.h"

#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"
/* The descriptor number the agent socket has inside QEMU. */
#define QEMU_AGENT_FD 3
#define QEMU_MAX_ARGS 64

static const char *qemu_binary(void)
{
	const char *env = getenv("MSB_QEMU");

	return env && *env ? env : QEMU_DEFAULT_BINARY;
}

const char *engine_accel_name(enum engine_accel accel)
{
	return accel == ENGINE_ACCEL_KVM ? "kvm" : "tcg";
}

struct argv_builder {
	char *argv[QEMU_MAX_ARGS];
	char storage[16][PATH_MAX];
	int n;
	int n_storage;
};

static void arg(struct argv_builder *b, const char *value)
{
	if (b->n < QEMU_MAX_ARGS - 1)
		b->argv[b->n++] = (char *)value;
}

static void argf(struct argv_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void argf(struct argv_builder *b, const char *fmt, ...)
{
	va_list ap;

	if (b->n_storage >= 16)
		return;
	va_start(ap, fmt);
	vsnprintf(b->storage[b->n_storage], sizeof(b->storage[0]), fmt, ap);
	va_end(ap);
	arg(b, b->storage[b->n_storage++]);
}

static void build_argv(struct argv_builder *b, const struct engine_config *c)
{
	memset(b, 0, sizeof(*b));
	arg(b, qemu_binary());
	arg(b, "-name");
	argf(b, "msb-%s", c->name);
	arg(b, "-M");
	if (c->fs_socket) {
		arg(b, "microvm,pcie=on,memory-backend=mem");
		arg(b, "-object");
		argf(b, "memory-backend-memfd,id=mem,size=%uM,share=on", c->memory_mib);
	} else {
		arg(b, "microvm,pcie=on");
	}
	arg(b, "-accel");
	arg(b, c->accel == ENGINE_ACCEL_KVM ? "kvm" : "tcg,thread=multi");
	arg(b, "-cpu");
	arg(b, c->accel == ENGINE_ACCEL_KVM ? "host" : "max");
	arg(b, "-smp");
	argf(b, "%u", c->cpus ? c->cpus : 1);
	arg(b, "-m");
	argf(b, "%u", c->memory_mib);
	arg(b, "-nodefaults");
	arg(b, "-no-user-config");
	arg(b, "-display");
	arg(b, "none");
	arg(b, "-no-reboot");
	arg(b, "-kernel");
	arg(b, c->kernel);
	arg(b, "-initrd");
	arg(b, c->initramfs);
	arg(b, "-append");
	arg(b, c->cmdline);
	arg(b, "-chardev");
	argf(b, "file,id=console,path=%s", c->console_log);
	arg(b, "-serial");
	arg(b, "chardev:console");
	arg(b, "-device");
	arg(b, "virtio-serial-pci,id=vser");
	arg(b, "-chardev");
	argf(b, "socket,id=agent,fd=%d", QEMU_AGENT_FD);
	arg(b, "-device");
	arg(b, "virtserialport,bus=vser.0,chardev=agent,name=agent");
	if (c->root_image) {
		arg(b, "-drive");
		argf(b, "if=none,id=root,format=raw,readonly=on,file=%s", c->root_image);
		arg(b, "-device");
		arg(b, "virtio-blk-pci,drive=root");
	}
	if (c->fs_socket) {
		arg(b, "-chardev");
		argf(b, "socket,id=fs,path=%s", c->fs_socket);
		arg(b, "-device");
		argf(b, "vhost-user-fs-pci,chardev=fs,tag=%s", c->fs_tag);
	}
	if (c->upper_image) {
		arg(b, "-drive");
		argf(b, "if=none,id=upper,format=raw,discard=unmap,file=%s", c->upper_image);
		arg(b, "-device");
		arg(b, "virtio-blk-pci,drive=upper");
	}
	b->argv[b->n] = NULL;
}

static void run_child(const struct argv_builder *b, const struct engine_config *c, int diag_write, pid_t parent)
	__attribute__((noreturn));

static void run_child(const struct argv_builder *b, const struct engine_config *c, int diag_write, pid_t parent)
{
	int null_fd;

	/* QEMU must not outlive the sandbox process, even one killed with
	 * SIGKILL. The parent may already be gone by the time the flag is
	 * set, which getppid() shows. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);

	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(diag_write, 2) < 0 ||
	    dup2(c->agent_fd, QEMU_AGENT_FD) < 0)
		_exit(1);
	/* Only stdio and the agent socket stay open in QEMU. */
	for (int fd = QEMU_AGENT_FD + 1; fd < 1024; fd++)
		close(fd);

	execvp(b->argv[0], b->argv);
	fprintf(stderr, "msb: execute %s: %s\n", b->argv[0], strerror(errno));
	_exit(127);
}

static int qemu_start(const struct engine_config *c, struct engine_vm *vm, msb_error *err)
{
	struct argv_builder b;
	int diag[2];
	pid_t parent = getpid();
	pid_t pid;

	build_argv(&b, c);
	if (pipe2(diag, O_CLOEXEC) < 0)
		return err_sys(err, -errno, "create pipe for QEMU diagnostics");

	pid = fork();
	if (pid < 0) {
		close(diag[0]);
		close(diag[1]);
		return err_sys(err, -errno, "start QEMU");
	}
	if (pid == 0)
		run_child(&b, c, diag[1], parent);

	close(diag[1]);
	vm->pid = pid;
	vm->diag_fd = diag[0];
	return 0;
}

static void qemu_kill(struct engine_vm *vm)
{
	if (vm->pid > 0)
		kill(vm->pid, SIGKILL);
}

static int qemu_describe(char *out, size_t out_len, msb_error *err)
{
	char cmd[PATH_MAX + 32], line[256] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s --version 2>&1", qemu_binary());
	p = popen(cmd, "r");
	if (!p)
		return err_sys(err, -errno, "run %s", qemu_binary());
	if (!fgets(line, sizeof(line), p))
		line[0] = 0;
	if (pclose(p) != 0 || strncmp(line, "QEMU", 4) != 0)
		return err_set(err, -ENOENT, "%s is not usable; install Debian's qemu-system-x86 package",
			       qemu_binary());
	line[strcspn(line, "\n")] = 0;
	snprintf(out, out_len, "%s (%s)", line, qemu_binary());
	return 0;
}

const struct engine_ops engine_qemu = {
	.name = "qemu",
	.start = qemu_start,
	.kill = qemu_kill,
	.describe = qemu_describe,
};
