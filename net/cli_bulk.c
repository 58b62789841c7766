/*
 * cli_bulk.c -- userdb-cli export and import: streaming HTTP clients of
 * GET /v1/users/export and POST /v1/users/import (SPEC §9).
 *
 *   userdb-cli [--host H] [--http-port N] export [FILE]
 *   userdb-cli [--host H] [--http-port N] import FILE [--on-conflict M]
 *
 * HTTP/1.1 (HTTPS with --tls, cli_tls.h) on a blocking socket, one
 * request, Connection: close; the
 * response is read with http-parser, so a chunked export is checked to its
 * last chunk (an export cut short is an error, not a short file).  Neither
 * direction holds more than one buffer: the export is written to FILE (or
 * stdout) as it arrives, the import file is sent as it is read, with a
 * Content-Length from its size (a pipe or other unsized input is sent
 * chunked).  While stderr is a terminal a progress line is redrawn there
 * four times a second: users (lines), MB, users/s, and for an import of a
 * sized file the percentage and ETA.  A summary line ends both.
 *
 * Exit status: 0 all good, 1 some import lines failed, 2 could not run (no
 * server, refused key, bad file, a non-200 answer, a cut stream).
 */
#include "cli_bulk.h"

#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BULK_IO (256u << 10)

struct progress {
	bool tty;
	double start, last;
	uint64_t users, bytes, total; /* total 0: size unknown */
	const char *verb;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_show(struct progress *p, bool force)
{
	double t = now_s(), el = t - p->start;
	double rate = el > 0 ? (double)p->users / el : 0;
	if (!p->tty || (!force && t - p->last < 0.25))
		return;
	p->last = t;
	fprintf(stderr, "\r%s %llu users, %.1f MB, %.0f users/s", p->verb,
		(unsigned long long)p->users, (double)p->bytes / 1e6, rate);
	if (p->total && p->bytes && el > 0) {
		double eta =
		    el * (double)(p->total - p->bytes) / (double)p->bytes;
		fprintf(stderr, ", %.0f%%, ETA %.0f s",
			100.0 * (double)p->bytes / (double)p->total, eta);
	}
	fputs("   ", stderr);
	fflush(stderr);
}

static void progress_count(struct progress *p, const char *b, size_t n)
{
	for (const char *e = b + n; (b = memchr(b, '\n', (size_t)(e - b))); b++)
		p->users++;
	p->bytes += n;
	progress_show(p, false);
}

/* The response being read. */
struct resp {
	http_parser parser;
	FILE *sink;	     /* export: 200 bodies go here */
	struct progress *pg; /* counted when sinking */
	char *body;	     /* anything not sunk, up to 1 MiB */
	size_t body_len;
	bool done, write_failed;
};

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct resp *r = p->data;
	if (r->sink && p->status_code == 200) {
		if (fwrite(at, 1, n, r->sink) != n)
			r->write_failed = true;
		progress_count(r->pg, at, n);
		return r->write_failed ? -1 : 0;
	}
	if (r->body_len + n > (1u << 20))
		return 0;
	char *nb = realloc(r->body, r->body_len + n + 1);
	if (!nb)
		return -1;
	memcpy(nb + r->body_len, at, n);
	r->body = nb;
	r->body_len += n;
	r->body[r->body_len] = 0;
	return 0;
}

static int on_complete(http_parser *p)
{
	((struct resp *)p->data)->done = true;
	return 0;
}

static const http_parser_settings resp_settings = {
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* Read the whole response from cc. 0, or -1 when it was cut or broken. */
static int resp_read(struct cli_conn *cc, struct resp *r)
{
	static char buf[BULK_IO];
	http_parser_init(&r->parser, HTTP_RESPONSE);
	r->parser.data = r;
	while (!r->done) {
		ssize_t n = cli_conn_recv(cc, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		size_t k = http_parser_execute(&r->parser, &resp_settings, buf,
					       (size_t)n);
		if (n == 0)
			break; /* EOF told to the parser above */
		if (k != (size_t)n || HTTP_PARSER_ERRNO(&r->parser) != HPE_OK)
			return -1;
	}
	return r->done ? 0 : -1;
}

/* An error envelope's message, or the body. */
static void print_error(const char *what, const struct resp *r)
{
	json_t *o = r->body ? json_loads(r->body, 0, NULL) : NULL;
	const char *msg = json_string_value(
	    json_object_get(json_object_get(o, "error"), "message"));
	fprintf(stderr, "userdb-cli: %s: HTTP %u: %s\n", what,
		r->parser.status_code,
		msg	  ? msg
		: r->body ? r->body
			  : "(no body)");
	json_decref(o);
}

static int request_head(struct cli_conn *cc, const char *method,
			const char *target, const char *host, const char *key,
			const char *extra)
{
	char head[2048];
	int n = snprintf(head, sizeof head,
			 "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s"
			 "Connection: close\r\n%s\r\n",
			 method, target, host,
			 key[0] ? "Authorization: Bearer " : "", key,
			 key[0] ? "\r\n" : "", extra);
	return n < 0 || (size_t)n >= sizeof head
		   ? -1
		   : cli_conn_send(cc, head, (size_t)n);
}

static int do_export(const struct cli_bulk *b, int argc, char **argv)
{
	struct progress pg = {.tty = isatty(2), .verb = "exported"};
	struct resp r = {.pg = &pg};
	const char *path = argc > 0 ? argv[0] : NULL;
	struct cli_conn cc;
	int rc = 2;
	if (argc > 1) {
		fputs("usage: userdb-cli export [FILE]\n", stderr);
		return 2;
	}
	r.sink = path ? fopen(path, "w") : stdout;
	if (!r.sink) {
		fprintf(stderr, "userdb-cli: %s: %s\n", path, strerror(errno));
		return 2;
	}
	if (cli_conn_tcp(&cc, b->host, b->http_port, b->tls))
		goto out;
	pg.start = now_s();
	if (request_head(&cc, "GET", "/v1/users/export", b->host, b->key, "") ||
	    resp_read(&cc, &r) || r.write_failed) {
		if (r.parser.status_code == 200 || !r.parser.status_code)
			fprintf(stderr,
				"\nuserdb-cli: export cut short after "
				"%llu users\n",
				(unsigned long long)pg.users);
		else
			print_error("export", &r);
	} else if (r.parser.status_code != 200) {
		print_error("export", &r);
	} else {
		progress_show(&pg, true);
		fprintf(stderr, "%sexported %llu users (%.1f MB) in %.2f s\n",
			pg.tty ? "\n" : "", (unsigned long long)pg.users,
			(double)pg.bytes / 1e6, now_s() - pg.start);
		rc = 0;
	}
	cli_conn_close(&cc);
out:
	if (path && fclose(r.sink) != 0 && rc == 0)
		rc = 2;
	else if (!path && fflush(stdout) != 0 && rc == 0)
		rc = 2;
	free(r.body);
	return rc;
}

/* Send the file: sized with Content-Length, else chunked. */
static int send_file(struct cli_conn *cc, FILE *in, bool chunked,
		     struct progress *pg)
{
	static char buf[BULK_IO];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		char hex[16];
		int hn = snprintf(hex, sizeof hex, "%zx\r\n", n);
		if ((chunked && cli_conn_send(cc, hex, (size_t)hn)) ||
		    cli_conn_send(cc, buf, n) ||
		    (chunked && cli_conn_send(cc, "\r\n", 2)))
			return -1; /* the server answered early: read it */
		progress_count(pg, buf, n);
	}
	if (ferror(in))
		return -2;
	return chunked ? cli_conn_send(cc, "0\r\n\r\n", 5) : 0;
}

static int import_summary(const struct resp *r, struct progress *pg)
{
	json_t *o = json_loads(r->body ? r->body : "", 0, NULL);
	json_t *d = json_object_get(o, "data"), *e;
	size_t i;
	json_int_t failed = json_integer_value(json_object_get(d, "failed"));
	if (!json_is_object(d)) {
		fputs("userdb-cli: import: unreadable answer\n", stderr);
		json_decref(o);
		return 2;
	}
	json_array_foreach(json_object_get(d, "errors"), i, e)
	{
		const char *f = json_string_value(json_object_get(e, "field"));
		fprintf(
		    stderr, "line %lld: %s: %s%s%s%s\n",
		    (long long)json_integer_value(json_object_get(e, "line")),
		    json_string_value(json_object_get(e, "code")),
		    json_string_value(json_object_get(e, "message")),
		    f ? " (field " : "", f ? f : "", f ? ")" : "");
	}
	fprintf(stderr,
		"imported %.1f MB in %.2f s: %lld created, %lld updated, "
		"%lld skipped, %lld failed\n",
		(double)pg->bytes / 1e6, now_s() - pg->start,
		(long long)json_integer_value(json_object_get(d, "created")),
		(long long)json_integer_value(json_object_get(d, "updated")),
		(long long)json_integer_value(json_object_get(d, "skipped")),
		(long long)failed);
	json_decref(o);
	return failed ? 1 : 0;
}

static int do_import(const struct cli_bulk *b, int argc, char **argv)
{
	struct progress pg = {.tty = isatty(2), .verb = "sent"};
	struct resp r = {0};
	const char *mode = NULL;
	char target[128], extra[128];
	struct stat st;
	struct cli_conn cc;
	int rc = 2;
	if (argc == 3 && !strcmp(argv[1], "--on-conflict"))
		mode = argv[2];
	if ((argc != 1 && !mode) ||
	    (mode && strcmp(mode, "fail") && strcmp(mode, "skip") &&
	     strcmp(mode, "update"))) {
		fputs("usage: userdb-cli import FILE [--on-conflict "
		      "fail|skip|update]\n",
		      stderr);
		return 2;
	}
	FILE *in = strcmp(argv[0], "-") ? fopen(argv[0], "r") : stdin;
	if (!in || fstat(fileno(in), &st) != 0) {
		fprintf(stderr, "userdb-cli: %s: %s\n", argv[0],
			strerror(errno));
		return 2;
	}
	bool sized = S_ISREG(st.st_mode);
	pg.total = sized ? (uint64_t)st.st_size : 0;
	snprintf(target, sizeof target, "/v1/users/import%s%s",
		 mode ? "?on_conflict=" : "", mode ? mode : "");
	if (sized)
		snprintf(extra, sizeof extra,
			 "Content-Type: application/x-ndjson\r\n"
			 "Content-Length: %llu\r\n",
			 (unsigned long long)st.st_size);
	else
		snprintf(extra, sizeof extra,
			 "Content-Type: application/x-ndjson\r\n"
			 "Transfer-Encoding: chunked\r\n");
	if (cli_conn_tcp(&cc, b->host, b->http_port, b->tls))
		goto out;
	pg.start = now_s();
	int sent = request_head(&cc, "POST", target, b->host, b->key, extra);
	if (sent == 0)
		sent = send_file(&cc, in, !sized, &pg);
	if (sent == -2) {
		fprintf(stderr, "userdb-cli: %s: %s\n", argv[0],
			strerror(errno));
	} else {
		progress_show(&pg, true);
		if (pg.tty)
			fputc('\n', stderr);
		if (resp_read(&cc, &r))
			fputs("userdb-cli: import: the connection was cut "
			      "before the answer\n",
			      stderr);
		else if (r.parser.status_code != 200)
			print_error("import", &r);
		else
			rc = import_summary(&r, &pg);
	}
	cli_conn_close(&cc);
out:
	if (in != stdin)
		fclose(in);
	free(r.body);
	return rc;
}

int cli_bulk_run(const struct cli_bulk *b, const char *cmd, int argc,
		 char **argv)
{
	if (!strcmp(cmd, "export"))
		return do_export(b, argc, argv);
	if (!strcmp(cmd, "import") && argc >= 1)
		return do_import(b, argc, argv);
	fputs("usage: userdb-cli import FILE [--on-conflict "
	      "fail|skip|update]\n",
	      stderr);
	return 2;
}
