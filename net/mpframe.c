/*
 * mpframe.c -- incremental MessagePack frame scanner; see mpframe.h.
 */
#include "mpframe.h"

void mpframe_reset(struct mpframe *f)
{
	f->pos = 0;
	f->depth = 0;
	f->left[0] = 1;
}

static uint64_t be_read(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Decode the header at p (avail bytes).  Returns 1 with *hlen (header
 * bytes), *payload (raw bytes after the header) and *items (nested items
 * that follow), 0 when the header is incomplete, -1 for 0xc1.  Table-driven
 * by the MessagePack type byte, hence one long switch. */
static int head_decode(const uint8_t *p, size_t avail, unsigned *hlen,
		       uint64_t *payload, uint64_t *items)
{
	uint8_t b = p[0];
	unsigned lenbytes = 0, extra = 0;

	*payload = 0;
	*items = 0;
	*hlen = 1;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
		return 1;
	if (b >= 0x80 && b <= 0x8f) {
		*items = 2u * (b & 0x0f);
		return 1;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*items = b & 0x0f;
		return 1;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*payload = b & 0x1f;
		return 1;
	}
	switch (b) {
	case 0xc1:
		return -1;
	case 0xca:
		*payload = 4;
		return 1;
	case 0xcb:
		*payload = 8;
		return 1;
	case 0xcc:
	case 0xd0:
		*payload = 1;
		return 1;
	case 0xcd:
	case 0xd1:
		*payload = 2;
		return 1;
	case 0xce:
	case 0xd2:
		*payload = 4;
		return 1;
	case 0xcf:
	case 0xd3:
		*payload = 8;
		return 1;
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		*payload = 1 + (1u << (b - 0xd4)); /* type byte + data */
		return 1;
	case 0xc4:
	case 0xd9:
		lenbytes = 1;
		break;
	case 0xc5:
	case 0xda:
		lenbytes = 2;
		break;
	case 0xc6:
	case 0xdb:
		lenbytes = 4;
		break;
	case 0xc7:
		lenbytes = 1, extra = 1;
		break;
	case 0xc8:
		lenbytes = 2, extra = 1;
		break;
	case 0xc9:
		lenbytes = 4, extra = 1;
		break;
	case 0xdc:
	case 0xde:
		lenbytes = 2;
		break;
	case 0xdd:
	case 0xdf:
		lenbytes = 4;
		break;
	}
	if (avail < 1 + lenbytes)
		return 0;
	uint64_t n = be_read(p + 1, lenbytes);
	*hlen = 1 + lenbytes;
	if (b == 0xdc || b == 0xdd)
		*items = n;
	else if (b == 0xde || b == 0xdf)
		*items = 2 * n;
	else
		*payload = n + extra;
	return 1;
}

long mpframe_scan(struct mpframe *f, const uint8_t *buf, size_t len, size_t max)
{
	while (f->pos < len) {
		/* Unfinished at the limit: too big, whatever the next byte is
		 * (else the verdict would depend on how the bytes arrived). */
		if (f->pos >= max)
			return MPFRAME_ETOOBIG;
		unsigned hlen;
		uint64_t payload, items;
		int rc = head_decode(buf + f->pos, len - f->pos, &hlen,
				     &payload, &items);
		if (rc < 0)
			return MPFRAME_EBAD;
		/* Every item needs at least one byte: a count larger than
		 * the limit can never fit. */
		if (payload > max || items > max ||
		    f->pos + hlen + payload + items > max)
			return MPFRAME_ETOOBIG;
		if (rc == 0 || f->pos + hlen + payload > len)
			return 0;
		f->pos += hlen + payload;
		f->left[f->depth]--;
		if (items > 0) {
			if (f->depth == MPFRAME_MAX_DEPTH)
				return MPFRAME_EBAD;
			f->left[++f->depth] = items;
		}
		while (f->depth > 0 && f->left[f->depth] == 0)
			f->depth--;
		if (f->depth == 0 && f->left[0] == 0)
			return (long)f->pos;
	}
	return f->pos >= max ? MPFRAME_ETOOBIG : 0;
}

bool mpframe_peek_msgid(const uint8_t *buf, size_t len, uint64_t *msgid)
{
	size_t i;

	if (len < 3)
		return false;
	if (buf[0] == 0x94)
		i = 1;
	else if (len >= 5 && buf[0] == 0xdc && buf[1] == 0 && buf[2] == 4)
		i = 3;
	else
		return false;
	if (buf[i++] != 0x00)
		return false;
	uint8_t b = buf[i];
	unsigned n = b <= 0x7f	 ? 0
		     : b == 0xcc ? 1
		     : b == 0xcd ? 2
		     : b == 0xce ? 4
		     : b == 0xcf ? 8
				 : 9;
	if (n == 9 || len < i + 1 + n)
		return false;
	*msgid = n == 0 ? b : be_read(buf + i + 1, n);
	return true;
}
