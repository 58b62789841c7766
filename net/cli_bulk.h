/*
 * cli_bulk.h -- userdb-cli's export and import commands (cli_bulk.c).
 */
#ifndef UD_NET_CLI_BULK_H
#define UD_NET_CLI_BULK_H

#include <stdbool.h>

#include "cli_tls.h"

struct cli_bulk {
	const char *host, *http_port, *key;
	const struct cli_tls *tls; /* HTTPS when tls->on */
};

/* Run `export [FILE]` or `import FILE [--on-conflict M]`; returns the exit
 * status (0 good, 1 some lines failed, 2 could not run). */
int cli_bulk_run(const struct cli_bulk *b, const char *cmd, int argc,
		 char **argv);

#endif
