/*
 * helper_server.c -- spawn the server and talk to it; see helper_server.h.
 */
#include "helper_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

static const char *server_path(void)
{
	const char *p = getenv("USERDB_SERVER");
	return p ? p : "./userdb-server";
}

/* Read the child's stdout until the ready line. */
static int wait_ready(struct tsrv *s, int fd)
{
	size_t len = 0;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	time_t deadline = time(NULL) + 10;
	while (time(NULL) < deadline && len < sizeof s->out - 1) {
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		ssize_t n = read(fd, s->out + len, sizeof s->out - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		s->out[len] = 0;
		char *ready = strstr(s->out, "ready");
		if (ready && strchr(ready, '\n')) {
			char *r = strstr(ready, "rpc="),
			     *h = strstr(ready, "http=");
			r = r ? strrchr(strtok(r, " "), ':') : NULL;
			s->rpc_port = r ? atoi(r + 1) : 0;
			h = h ? strrchr(h, ':') : NULL;
			s->http_port = h ? atoi(h + 1) : 0;
			return s->rpc_port && s->http_port ? 0 : -1;
		}
	}
	return -1;
}

int tsrv_start(struct tsrv *s, bool persist, bool with_key,
	       const char *const *args)
{
	const char *argv[64];
	int n = 0, pipefd[2];
	if (!s->dir[0]) {
		strcpy(s->dir, "/tmp/userdb-test-XXXXXX");
		if (!mkdtemp(s->dir))
			return -1;
	}
	snprintf(s->data, sizeof s->data, "%s/data", s->dir);
	snprintf(s->sock, sizeof s->sock, "%s/rpc.sock", s->dir);
	argv[n++] = server_path();
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--http-port";
	argv[n++] = "0";
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	if (persist) {
		argv[n++] = "--data-dir";
		argv[n++] = s->data;
	} else {
		argv[n++] = "--no-persist";
	}
	if (with_key) {
		argv[n++] = "--api-key";
		argv[n++] = TSRV_KEY;
	}
	for (; args && *args && n < 62; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	if (pipe(pipefd))
		return -1;
	s->pid = fork();
	if (s->pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	int rc = wait_ready(s, pipefd[0]);
	close(pipefd[0]); /* later prints go to a closed pipe: ignored */
	return rc;
}

int tsrv_stop(struct tsrv *s)
{
	int st;
	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	if (waitpid(s->pid, &st, 0) < 0)
		return -1;
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int tsrv_cleanup(struct tsrv *s)
{
	char cmd[400];
	int status = 0;
	if (s->pid > 0)
		status = tsrv_stop(s);
	if (s->dir[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", s->dir);
		s->dir[0] = 0;
	}
	return status;
}

/* ---- HTTP --------------------------------------------------------------- */

int tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = {.tv_sec = 20};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
		close(fd);
		return -1;
	}
	return fd;
}

int send_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Split a full response held in buf into r. */
static int parse_response(char *buf, size_t len, struct hresp *r)
{
	char *end = strstr(buf, "\r\n\r\n");
	if (!end || sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	size_t hl = (size_t)(end - buf) + 2;
	if (hl >= sizeof r->headers)
		hl = sizeof r->headers - 1;
	memcpy(r->headers, buf, hl);
	r->headers[hl] = 0;
	r->body_len = len - (size_t)(end + 4 - buf);
	r->body = malloc(r->body_len + 1);
	memcpy(r->body, end + 4, r->body_len);
	r->body[r->body_len] = 0;
	return 0;
}

int http_raw(const struct tsrv *s, const char *raw, size_t len, struct hresp *r)
{
	memset(r, 0, sizeof(*r));
	int fd = tcp_connect(s->http_port);
	if (fd < 0)
		return -1;
	send_all(fd, raw, len); /* the server may answer before reading all */
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
		ssize_t got = recv(fd, buf + n, cap - 1 - n, 0);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = 0;
	close(fd);
	int rc = parse_response(buf, n, r);
	free(buf);
	return rc;
}

int http_do(const struct tsrv *s, const char *method, const char *path,
	    const char *body, bool auth, const char *extra, struct hresp *r)
{
	size_t bl = body ? strlen(body) : 0;
	size_t cap = bl + 1024 + strlen(path) + (extra ? strlen(extra) : 0);
	char *req = malloc(cap);
	int n = snprintf(req, cap,
			 "%s %s HTTP/1.1\r\nHost: localhost\r\n"
			 "Connection: close\r\n%s%s%s"
			 "Content-Length: %zu\r\n\r\n",
			 method, path,
			 auth ? "Authorization: Bearer " TSRV_KEY "\r\n" : "",
			 body ? "Content-Type: application/json\r\n" : "",
			 extra ? extra : "", bl);
	memcpy(req + n, body ? body : "", bl);
	int rc = http_raw(s, req, (size_t)n + bl, r);
	free(req);
	return rc;
}

const char *hresp_header(const struct hresp *r, const char *name, char *out,
			 size_t cap)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(r->headers, "\r\n"); p && p[2];
	     p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (!strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1, *e = strstr(v, "\r\n");
			while (*v == ' ')
				v++;
			size_t len = e ? (size_t)(e - v) : strlen(v);
			if (len >= cap)
				len = cap - 1;
			memcpy(out, v, len);
			out[len] = 0;
			return out;
		}
	}
	return NULL;
}

json_t *hresp_json(const struct hresp *r)
{
	return r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

void hresp_free(struct hresp *r)
{
	free(r->body);
	r->body = NULL;
}

const char *hresp_error_code(const struct hresp *r, char *out, size_t cap)
{
	json_t *j = hresp_json(r);
	const char *code = json_string_value(
	    json_object_get(json_object_get(j, "error"), "code"));
	snprintf(out, cap, "%s", code ? code : "");
	json_decref(j);
	return out;
}

/* ---- RPC
 * ---------------------------------------------------------------------- */

static int rpcc_init(struct rpcc *c, int fd)
{
	struct timeval tv = {.tv_sec = 20};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	c->fd = fd;
	c->next_id = 1;
	c->unpacker = malloc(sizeof(msgpack_unpacker));
	msgpack_unpacker_init(c->unpacker, 1 << 16);
	return 0;
}

int rpcc_open(struct rpcc *c, int port)
{
	int fd = tcp_connect(port);
	return fd < 0 ? -1 : rpcc_init(c, fd);
}

int rpcc_open_unix(struct rpcc *c, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
		close(fd);
		return -1;
	}
	return rpcc_init(c, fd);
}

void rpcc_close(struct rpcc *c)
{
	if (c->unpacker) {
		msgpack_unpacker_destroy(c->unpacker);
		free(c->unpacker);
		c->unpacker = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

unsigned rpcc_send(struct rpcc *c, const char *method, const char *params)
{
	struct ud_buf b = {0};
	msgpack_packer pk;
	unsigned id = c->next_id++;
	json_t *p = json_loads(params, JSON_DECODE_ANY, NULL);
	msgpack_packer_init(&pk, &b, codec_buf_write_cb);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, id);
	msgpack_pack_str_with_body(&pk, method, strlen(method));
	if (!p || codec_json_to_mp(p, &b, "params", NULL))
		msgpack_pack_nil(&pk);
	json_decref(p);
	send_all(c->fd, b.data, b.len);
	ud_buf_free(&b);
	return id;
}

/* The object as JSON text via a re-pack (our JSON writer is lenient). */
static json_t *object_json(const msgpack_object *o)
{
	struct ud_buf mp = {0}, js = {0};
	msgpack_packer pk;
	msgpack_packer_init(&pk, &mp, codec_buf_write_cb);
	msgpack_pack_object(&pk, *o);
	json_t *j = NULL;
	if (codec_mp_to_json(mp.data, mp.len, &js) == 0)
		j = json_loadb(js.data, js.len, JSON_DECODE_ANY, NULL);
	ud_buf_free(&mp);
	ud_buf_free(&js);
	return j;
}

json_t *rpcc_recv(struct rpcc *c)
{
	msgpack_unpacker *u = c->unpacker;
	msgpack_unpacked res;
	msgpack_unpacked_init(&res);
	for (;;) {
		if (msgpack_unpacker_next(u, &res) == MSGPACK_UNPACK_SUCCESS) {
			json_t *j = object_json(&res.data);
			msgpack_unpacked_destroy(&res);
			return j;
		}
		msgpack_unpacker_reserve_buffer(u, 1 << 16);
		ssize_t n = recv(c->fd, msgpack_unpacker_buffer(u),
				 msgpack_unpacker_buffer_capacity(u), 0);
		if (n <= 0) {
			msgpack_unpacked_destroy(&res);
			return NULL;
		}
		msgpack_unpacker_buffer_consumed(u, (size_t)n);
	}
}

json_t *rpcc_call(struct rpcc *c, const char *method, const char *params)
{
	unsigned id = rpcc_send(c, method, params);
	json_t *r = rpcc_recv(c);
	if (r && json_integer_value(json_array_get(r, 1)) != (json_int_t)id) {
		json_decref(r);
		return NULL;
	}
	return r;
}

const char *rpc_err(json_t *resp)
{
	const char *s =
	    json_string_value(json_object_get(json_array_get(resp, 2), "code"));
	return s ? s : "";
}

json_t *rpc_res(json_t *resp)
{
	return json_array_get(resp, 3);
}

int rpcc_auth(struct rpcc *c)
{
	json_t *r = rpcc_call(c, "auth", "[\"" TSRV_KEY "\"]");
	int rc = r && json_is_true(rpc_res(r)) ? 0 : -1;
	json_decref(r);
	return rc;
}

/* ---- abuse and crash tests ---------------------------------------------- */

/* The ports from a ready line in text; 0 or -1 (not there yet). */
static int ports_from_log(struct tsrv *s, const char *text)
{
	const char *ready = strstr(text, "ready rpc=");
	if (!ready || !strchr(ready, '\n'))
		return -1;
	const char *r = strstr(ready, "rpc="), *h = strstr(ready, "http=");
	const char *rc = r ? strchr(r, ' ') : NULL;
	if (!r || !h || !rc)
		return -1;
	while (rc > r && *rc != ':')
		rc--;
	const char *hc = strchr(h, '\n');
	while (hc > h && *hc != ':')
		hc--;
	s->rpc_port = atoi(rc + 1);
	s->http_port = atoi(hc + 1);
	size_t len = strnlen(text, sizeof s->out - 1);
	memcpy(s->out, text, len);
	s->out[len] = 0;
	return s->rpc_port && s->http_port ? 0 : -1;
}

int tsrv_start_logged(struct tsrv *s, bool persist, bool with_key,
		      const char *const *args, const char *log_path)
{
	const char *argv[64];
	int n = 0;
	if (!s->dir[0]) {
		strcpy(s->dir, "/tmp/userdb-test-XXXXXX");
		if (!mkdtemp(s->dir))
			return -1;
	}
	snprintf(s->data, sizeof s->data, "%s/data", s->dir);
	snprintf(s->sock, sizeof s->sock, "%s/rpc.sock", s->dir);
	argv[n++] = server_path();
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--http-port";
	argv[n++] = "0";
	argv[n++] = "--socket";
	argv[n++] = s->sock;
	argv[n++] = persist ? "--data-dir" : "--no-persist";
	if (persist)
		argv[n++] = s->data;
	if (with_key) {
		argv[n++] = "--api-key";
		argv[n++] = TSRV_KEY;
	}
	for (; args && *args && n < 62; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return -1;
	off_t start = lseek(fd, 0, SEEK_END);
	s->pid = fork();
	if (s->pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	char buf[8192];
	for (int i = 0; i < 1000; i++) { /* 10 s */
		usleep(10000);
		int in = open(log_path, O_RDONLY);
		if (in < 0)
			return -1;
		ssize_t got = pread(in, buf, sizeof buf - 1, start);
		close(in);
		buf[got > 0 ? got : 0] = 0;
		if (ports_from_log(s, buf) == 0)
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			return -1;
		}
	}
	return -1;
}

long tsrv_rss_kb(const struct tsrv *s)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int rpcc_wrap_fd(struct rpcc *c, int fd)
{
	return fd < 0 ? -1 : rpcc_init(c, fd);
}

double tsrv_metric(const struct tsrv *s, const char *name)
{
	struct hresp r;
	double v = -1;
	if (http_do(s, "GET", "/metrics", NULL, true, NULL, &r) != 0)
		return -2;
	size_t nl = strlen(name);
	for (char *p = r.body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (!strncmp(p, name, nl) && (p[nl] == ' ' || p[nl] == '{')) {
			char *sp = strchr(p, ' ');
			v = sp ? strtod(sp + 1, NULL) : -1;
			break;
		}
	hresp_free(&r);
	return v;
}
