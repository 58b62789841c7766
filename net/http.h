/*
 * http.h -- the HTTP/JSON API (SPEC §2) on bufferevents.
 *
 * Choice: an HTTP/1.1 layer of our own on libevent bufferevents, with
 * Debian's libhttp-parser (nodejs/http-parser) for the wire format, rather
 * than libevent's evhttp.  Reasons: (1) every error must be a JSON envelope
 * with our codes, including 413 for an oversized body, 431/414 for
 * oversized headers or targets, which evhttp answers itself in HTML; (2)
 * replies must pass through the connection's held buffer so that they leave
 * only after the log write (server.h), which evhttp's own output path would
 * bypass; (3) keep-alive and pipelining with no per-request allocation of
 * header tables, for the GET /v1/users/{id} throughput target.
 *
 * Per connection: one http_parser fed straight from the input evbuffer's
 * chunks (no copy); the target, the headers we use (Authorization,
 * If-Match) and the body are collected under limits (--max-request-line,
 * --max-header, --max-body).  A complete request is executed at once and
 * its reply queued; requests are answered in order, so while a password job
 * is in flight the parser is paused and later pipelined requests wait.  A
 * request that breaks a limit or the HTTP grammar is answered (413, 414,
 * 431, 400) with Connection: close.
 *
 * Routing: fixed patterns, ids and identity targets percent-decoded (a bad
 * escape is 400).  The console's static files (/console, /console/...,
 * console.h) are answered first, without auth.  Auth (Bearer,
 * constant-time) on everything else but /healthz, checked before routing
 * so that an unauthenticated client learns nothing about paths.  Unknown
 * path 404 not_found; known path with another method
 * 405 method_not_allowed with Allow.
 */
#ifndef UD_NET_HTTP_H
#define UD_NET_HTTP_H

#include <stddef.h>

#include "server.h"

/* Percent-decode s[0..n) into out (room for n bytes); '+' becomes a space
 * when plus_space.  Returns the decoded length or -1 on a bad escape. */
long http_pct_decode(const char *s, size_t n, char *out, bool plus_space);

#endif
