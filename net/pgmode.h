/*
 * pgmode.h -- the server's PostgreSQL mode (--postgres CONNINFO, SPEC §7):
 * the wiring between the loop and persistence/pg*.  No SQL here.
 *
 * Start-up (pgmode_open, before the loop serves): the data dir holds only
 * the lock, the node id (`node-id`, made once) and the key file; the store
 * is memory only; a blocking connection migrates the schema and loads
 * every user (pg.h), rows the engine refuses are printed on stderr and
 * counted.  pgmode_start then opens the non-blocking write connection
 * (pg_write.h) on the loop and waits (at most 5 s, before `ready`) for it.
 *
 * Replies.  A write's reply is held (server.h) until PostgreSQL committed
 * every record journaled up to it: conn_reply_end notes the serial range
 * and where the reply lies in the connection's held bytes (a struct
 * pg_mark, pgmode_note_reply); server_release_held asks
 * pgmode_may_release, then pgmode_redo_refused replaces each reply whose
 * write PostgreSQL refused by the protocol's error reply for that verdict
 * (conn_proto.refused: 409 duplicate_email / duplicate_id, 412
 * precondition_failed, with the default mode's fields and messages), in
 * place, so pipelined replies keep their order.  A write whose outcome is
 * unknown (the connection broke with it in flight) closes its connection
 * with the held replies unsent.  Either way memory is put back to the row
 * PostgreSQL holds (pg_write.h, Rollback).
 *
 * Change stream (SPEC §8).  In this mode the store's own notifications are
 * off (changes_take_over): every change a watcher sees comes from the
 * replication stream, this node's own writes (their echo) as much as other
 * nodes' and SQL clients', so it leaves only after PostgreSQL committed it
 * and every node sees the same changes in the same order.  The seq of the
 * i-th users row change (i = 0, 1, ...) of the transaction whose commit
 * record is at LSN L is L * 2^PG_SEQ_INDEX_BITS + i: commit LSNs strictly
 * increase in the stream and two commit records lie at least 32 bytes
 * apart, so a transaction of up to 32 * 65536 (2M) user changes never
 * reaches the next one's seqs; past that a change takes the last seq + 1
 * (then nodes that saw that transaction and nodes started after it may
 * number the next transaction differently).  A change is built from the
 * row (the user after the change; unchanged TOAST columns from memory);
 * its event name, time and details (so the actor) come from the event row
 * userdb's writer inserts in the same transaction, and a SQL client's
 * change is user.created / user.updated / user.deleted with actor null.
 * A transaction sent again after a reconnect (commit LSN not above the
 * last one published) is not published twice.  At start the window begins
 * at the slot's consistent point: a resume from a seq before it is 410,
 * one from a seq this node has not reached yet is 400 (try again).
 */
#ifndef UD_NET_PGMODE_H
#define UD_NET_PGMODE_H

#define PG_SEQ_INDEX_BITS 16

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct conn;
struct ud_buf;

/* Open the store from PostgreSQL into srv->db.  0 or -1 (message on
 * stderr). */
int pgmode_open(struct server *srv);
/* Start the write connection on srv->base.  0 or -1. */
int pgmode_start(struct server *srv);
void pgmode_close(struct server *srv);

struct server_config;
/* userdb-server --postgres CONNINFO --drop-node NODE_ID: drop the slot
 * userdb_<NODE_ID> of a node gone for good (its WAL is then released) and
 * its replication origin, saying what it did.  Refused while that node is
 * connected (its slot is active).  Returns the exit status: 0 dropped, 1
 * nothing of that node found or PostgreSQL refused, 2 usage. */
int pgmode_drop_node(const struct server_config *cfg);

/* Once per loop iteration and on the tick. */
void pgmode_flush(struct server *srv);
void pgmode_tick(struct server *srv);

/* A held write reply: bytes [start, end) of its connection's held buffer,
 * the write serials [first, last] it waits for, the protocol's tag, and
 * PostgreSQL's refusal (0: none). */
struct pg_mark {
	size_t start, end;
	uint64_t first, last, tag;
	int code;
};

void pgmode_note_reply(struct conn *c);
/* Replace c's held replies that PostgreSQL refused (before they leave). */
void pgmode_redo_refused(struct conn *c);
/* 1: c's held write replies may leave; 0: not yet; -1: never (close). */
int pgmode_may_release(const struct conn *c);

/* Append the Prometheus lines of PostgreSQL mode to b (nothing when off).
 * 0 or -1 when out of memory. */
int pgmode_metrics(struct server *srv, struct ud_buf *b);

#endif
