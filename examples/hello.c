/* A libmsb program: boots a sandbox, runs Python in it with output
 * streamed through callbacks, writes and reads back a file, and stops.
 *
 *   build/examples/hello [PATH_OF_MSB]
 *
 * Build with: cc -Iinclude examples/hello.c build/libmsb.a -lsqlite3
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msb/msb.h"

static void print_stdout(void *user_data, const void *data, size_t len)
{
	fwrite(data, 1, len, stdout);
}

static void print_stderr(void *user_data, const void *data, size_t len)
{
	fwrite(data, 1, len, stderr);
}

static int fail(const char *what, const msb_error *err)
{
	fprintf(stderr, "hello: %s: %s\n", what, err->message);
	return 1;
}

int main(int argc, char **argv)
{
	msb_sandbox_options options = {
		.name = "hello-example",
		.ephemeral = true, /* removed when it stops, or when we exit */
		.runtime_path = argc > 1 ? argv[1] : "build/msb",
	};
	msb_exec_callbacks callbacks = { .on_stdout = print_stdout, .on_stderr = print_stderr };
	const char *script[] = { "-c", "import platform, sys; print('hello from', platform.release()); "
				       "print('stdin said:', sys.stdin.read())",
				 NULL };
	msb_exec_status status;
	msb_sandbox *sb;
	msb_client *client;
	msb_exec *exec;
	msb_error err;
	void *data;
	size_t len;

	if (msb_sandbox_create(&options, &sb, &err) < 0)
		return fail("create the sandbox", &err);
	if (msb_connect(msb_sandbox_name(sb), &client, &err) < 0)
		return fail("connect", &err);

	/* A command with stdin, streamed output and an exit status. */
	if (msb_exec_start(client, "python3", script, NULL, &callbacks, NULL, &exec, &err) < 0 ||
	    msb_exec_write_stdin(exec, "ping", 4, &err) < 0 || msb_exec_close_stdin(exec, &err) < 0 ||
	    msb_exec_wait(exec, &status, &err) < 0)
		return fail("run python3", &err);
	printf("python3 exited with %d\n", msb_exec_status_code(&status));
	msb_exec_free(exec);

	/* Files in and out. */
	if (msb_fs_write_file(client, "/tmp/note.txt", "written from the host\n", 22, 0644, &err) < 0 ||
	    msb_fs_read_file(client, "/tmp/note.txt", 1 << 20, &data, &len, &err) < 0)
		return fail("copy a file", &err);
	printf("read back %zu bytes: %s", len, (char *)data);
	free(data);

	msb_disconnect(client);
	if (msb_sandbox_stop(sb, 10, &err) < 0)
		return fail("stop", &err);
	msb_sandbox_free(sb);
	return 0;
}
