/*
 * rpc.h -- MessagePack-RPC over TCP and Unix sockets (SPEC §3).
 *
 * Framing.  Each connection keeps its unread bytes in one growing buffer.
 * mpframe (mpframe.h) finds where each object ends, checking the frame
 * limit (--max-frame) and that every count is backed by bytes; only a
 * complete frame is decoded (msgpack_unpack into a per-connection zone that
 * is cleared, not freed, between frames).  Many frames per read are
 * executed in order; replies are queued with their msgid, so a client may
 * pipeline any number of requests.  Password methods reply when the worker
 * pool is done, possibly after later requests (the spec allows it).
 *
 * Messages.  [0, msgid, method, params] is a request, [2, method, params] a
 * notification (executed, never answered).  A frame that decodes but has
 * the wrong shape gets an `invalid_request` error when a msgid can be read
 * and is otherwise ignored; the stream is still framed, so the connection
 * stays.  A frame that cannot be framed (byte 0xc1, nesting deeper than 64,
 * over the limit) gets `invalid_request` when its head shows a msgid, and
 * the connection is closed after the reply.  An unknown method is
 * `invalid_request` with field "method".
 *
 * Auth.  When keys are configured (always, see apikey.h) a connection must
 * call `auth` with a valid key before anything but `ping`; other requests
 * are answered `unauthorized` and notifications dropped.  Unix-socket
 * connections authenticate the same way.  Each method names the scope it
 * needs (apikey.h; the table in rpc.c, admin where it names none), checked
 * before any work: `forbidden` naming the scope needed.  The key is found
 * again on every request, so one removed by a SIGHUP reload is
 * `unauthorized` from its next request on (auth again with a valid key).
 * A request runs with its key's name as the store's actor.
 *
 * Extensions beyond SPEC §3: user.update and user.delete accept an optional
 * last param {"if_match": etag} (the ETag string as sent over HTTP, with or
 * without quotes); `precondition_failed` when it differs.
 */
#ifndef UD_NET_RPC_H
#define UD_NET_RPC_H

#include "server.h"

#endif
