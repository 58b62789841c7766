/*
 * stream.c -- the engine's side of the change stream (journal.h): telling
 * the listener of each applied change, and reading a change back out of a
 * log record.
 */
#include <stdlib.h>
#include <string.h>

#include "db.h"

void ud_db_set_changes(ud_db *db, ud_change_fn fn, void *ctx)
{
	db->changes = fn;
	db->changes_ctx = ctx;
}

uint64_t ud_db_last_seq(const ud_db *db)
{
	return db->last_event;
}

/* The view of ch; user as given. */
static void view_of(const struct change *ch, const struct record *user,
		    struct ud_change *c)
{
	c->seq = ch->ev.id;
	c->event = ch->ev.type;
	c->at_ms = ch->ev.ms;
	c->details = ch->ev.details;
	c->details_len = ch->ev.details_len;
	c->user = (const ud_user *)user;
	if (ch->type == CH_PUT) {
		c->user_id = record_id(ch->rec);
		c->user_id_len = ch->rec->id_len;
	} else {
		c->user_id = ch->id;
		c->user_id_len = ch->id_len;
	}
}

void db_note_prepare(const struct change *ch, struct db_note *n)
{
	n->put = ch->type == CH_PUT ? ch->rec : NULL;
	n->id_len = 0;
	if (ch->type != CH_PUT && ch->id && ch->id_len <= sizeof(n->id)) {
		memcpy(n->id, ch->id, ch->id_len);
		n->id_len = ch->id_len;
	}
}

void db_note_change(ud_db *db, const struct change *ch, const struct db_note *n)
{
	struct change tmp;
	struct ud_change c;

	if (!db->changes || !ch->has_event ||
	    (ch->type != CH_PUT && ch->type != CH_DEL && ch->type != CH_EVENT))
		return;
	tmp = *ch;
	if (ch->type == CH_PUT) {
		tmp.rec = (struct record *)n->put; /* applying took ch->rec */
		view_of(&tmp, n->put, &c);
	} else {
		tmp.id = n->id; /* a delete freed the record ch->id was in */
		tmp.id_len = n->id_len;
		view_of(&tmp, NULL, &c);
		if (ch->type == CH_EVENT)
			c.user = (const ud_user *)db_find(db, n->id, n->id_len);
	}
	db->changes(db->changes_ctx, &c);
}

int ud_change_decode(ud_db *db, const void *rec, size_t len,
		     struct ud_change *c, void **own)
{
	struct change ch;

	*own = NULL;
	if (change_decode(rec, len, &ch))
		return UD_ECORRUPT;
	if (!ch.has_event ||
	    (ch.type != CH_PUT && ch.type != CH_DEL && ch.type != CH_EVENT)) {
		change_release(&ch);
		return 1;
	}
	view_of(&ch, ch.type == CH_PUT ? ch.rec : NULL, c);
	if (ch.type == CH_EVENT)
		c->user = (const ud_user *)db_find(db, ch.id, ch.id_len);
	*own = ch.rec; /* NULL but for a put; events are not allocated */
	return 0;
}

void ud_change_release(void *own)
{
	free(own);
}
