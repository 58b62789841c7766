/*
 * main.c -- userdb-server: parse the configuration, start, serve until
 * SIGTERM/SIGINT, exit 0 (1 when it cannot start).  --version prints the
 * version and exits 0 before anything else is read.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "pgmode.h"
#include "server.h"
#include "userdb_version.h"

extern char **environ;

int main(int argc, char **argv)
{
	struct server_config cfg;
	static struct server srv; /* the one instance; see server.h */
	int status = 0;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--version")) {
			printf("userdb-server %s\n", UD_VERSION_TEXT);
			return 0;
		}
	if (config_parse(&cfg, argc, argv, environ, stderr)) {
		fprintf(stderr, "try: userdb-server --help\n");
		return 2;
	}
	if (cfg.help) {
		config_usage(stdout);
		config_free(&cfg);
		return 0;
	}
	if (cfg.drop_node) {
		status = pgmode_drop_node(&cfg);
		config_free(&cfg);
		return status;
	}
	if (server_start(&srv, &cfg) == 0) {
		server_run(&srv);
		status = srv.exit_status;
	} else
		status = 1;
	server_destroy(&srv);
	config_free(&cfg);
	if (status == 0)
		fprintf(stderr, "userdb-server: stopped\n");
	return status;
}
