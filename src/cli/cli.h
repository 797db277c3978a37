/* The msb command: subcommands and what they share. */
#ifndef MSB_CLI_CLI_H
#define MSB_CLI_CLI_H

#define MSB_VERSION "0.1.0"

/* Exit status for errors of msb itself (not of the command it ran). */
#define CLI_EXIT_ERROR 125
#define CLI_EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

/* Prints "msb: " and the message to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The path of this executable, used to start sandbox processes. */
const char *cli_self_path(void);

#endif
