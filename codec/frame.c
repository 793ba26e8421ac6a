/*
 * frame.c - the frame that carries one payload in a segment.
 *
 *   offset size  field
 *        0    8  checksum     XXH3-64 of bytes 8..24 of this header followed
 *                             by the payload (seed 0)
 *        8    4  payload_len  bytes of payload, <= FRAME_PAYLOAD_MAX
 *       12    1  kind         1 record, 2 registry, 3 seal
 *       13    1  flags        bit 0 SYNC_START; others 0
 *       14    2  reserved     0
 *       16    8  seq          store sequence number (0 for seal frames)
 *       24    -  payload      msgpack, payload_len bytes
 *
 * SYNC_START marks the first frame written after an fdatasync of its
 * segment completed (and the first frame of a segment): everything before
 * it was durable when it was written. Recovery uses it to tell the torn
 * remains of an unsynced write from damage to durable data (engine/scan.c).
 *
 * All integers little-endian. A frame is valid when its header fields are
 * plausible (non-zero kind, no unknown flag, zero reserved bytes, bounded length)
 * and the checksum matches. Kind 0 is never valid, so bytes that were never
 * written (zeros) can never pass for a frame. What to do with an invalid
 * frame, or a valid one of an unknown kind, is the engine's decision
 * (recovery), not the codec's.
 */
#include <errno.h>
#include <string.h>
#include <xxhash.h>

#include "codec.h"
#include "error.h"

/* Frames are always contiguous in memory (the payload is encoded right
 * after a reserved header, and reads fetch the whole frame at once), so the
 * checksum is one call over bytes 8..end. */
static uint64_t frame_checksum(const uint8_t *frame, uint32_t len)
{
	return XXH3_64bits(frame + 8, FRAME_HEADER_SIZE - 8 + (size_t)len);
}

void frame_header_write(uint8_t *out, uint8_t kind, uint8_t flags, uint64_t seq,
			uint32_t len)
{
	put_le32(out + 8, len);
	out[12] = kind;
	out[13] = flags;
	out[14] = 0;
	out[15] = 0;
	put_le64(out + 16, seq);
	put_le64(out, frame_checksum(out, len));
}

bool frame_header_read(const uint8_t in[FRAME_HEADER_SIZE],
		       struct frame_header *out)
{
	out->checksum = get_le64(in);
	out->payload_len = get_le32(in + 8);
	out->kind = in[12];
	out->flags = in[13];
	out->reserved = (uint16_t)(in[14] | in[15] << 8);
	out->seq = get_le64(in + 16);
	/* Any non-zero kind is plausible: a checksum-valid frame of a kind
	 * this build does not know comes from a newer writer, which the
	 * engine refuses by name rather than mistaking for damage. */
	return out->kind != 0 && (out->flags & ~FRAME_FLAGS_KNOWN) == 0 &&
	       out->reserved == 0 && out->payload_len <= FRAME_PAYLOAD_MAX;
}

uint64_t frame_seq_of(const uint8_t frame[FRAME_HEADER_SIZE])
{
	return get_le64(frame + 16);
}

bool frame_header_is_zero(const uint8_t in[FRAME_HEADER_SIZE])
{
	static const uint8_t zero[FRAME_HEADER_SIZE];

	return memcmp(in, zero, FRAME_HEADER_SIZE) == 0;
}

bool frame_checksum_ok(const uint8_t *frame, uint32_t len)
{
	return get_le64(frame) == frame_checksum(frame, len);
}

/*
 * Segment header, at offset 0 of every segment file:
 *
 *   offset size  field
 *        0    8  magic       "ATOLOGSG"
 *        8    2  major       SEGMENT_FORMAT_MAJOR (readers refuse higher)
 *       10    2  minor       SEGMENT_FORMAT_MINOR (compatible additions)
 *       12    4  size        64, the header's own size
 *       16    8  segment id  also the file name, in hex
 *       24   16  store id    the same in every segment of one store
 *       40    8  created_at  microseconds since 1970, UTC
 *       48    8  compaction  0, or the nonce of the compaction that wrote it
 *       56    8  checksum    XXH3-64 of bytes 0..56
 */
void segment_header_write(uint8_t out[SEGMENT_HEADER_SIZE],
			  const struct segment_header *h)
{
	memset(out, 0, SEGMENT_HEADER_SIZE);
	memcpy(out, SEGMENT_MAGIC, 8);
	out[8] = (uint8_t)h->major;
	out[9] = (uint8_t)(h->major >> 8);
	out[10] = (uint8_t)h->minor;
	out[11] = (uint8_t)(h->minor >> 8);
	put_le32(out + 12, SEGMENT_HEADER_SIZE);
	put_le64(out + 16, h->segment_id);
	memcpy(out + 24, h->store_id, UUID_SIZE);
	put_le64(out + 40, (uint64_t)h->created_at);
	put_le64(out + 48, h->compaction);
	put_le64(out + SEGMENT_HEADER_SUM_AT, XXH3_64bits(out, SEGMENT_HEADER_SUM_AT));
}

int segment_header_read(const uint8_t in[SEGMENT_HEADER_SIZE],
			struct segment_header *out)
{
	if (memcmp(in, SEGMENT_MAGIC, 8) != 0)
		return err_set(ATOLOG_CORRUPT, "not a segment (bad magic)");
	if (get_le64(in + SEGMENT_HEADER_SUM_AT) != XXH3_64bits(in, SEGMENT_HEADER_SUM_AT))
		return err_set(ATOLOG_CORRUPT, "segment header checksum mismatch");
	out->major = (uint16_t)(in[8] | in[9] << 8);
	out->minor = (uint16_t)(in[10] | in[11] << 8);
	if (out->major == 0)
		return err_set(ATOLOG_CORRUPT, "segment format major 0 does not exist");
	if (out->major > SEGMENT_FORMAT_MAJOR)
		return err_set(ATOLOG_VERSION,
			       "segment format %u.%u is newer than this build (%u.%u)",
			       out->major, out->minor, SEGMENT_FORMAT_MAJOR,
			       SEGMENT_FORMAT_MINOR);
	if (get_le32(in + 12) != SEGMENT_HEADER_SIZE)
		return err_set(ATOLOG_CORRUPT, "segment header size is not %d",
			       SEGMENT_HEADER_SIZE);
	out->segment_id = get_le64(in + 16);
	memcpy(out->store_id, in + 24, UUID_SIZE);
	out->created_at = (int64_t)get_le64(in + 40);
	out->compaction = get_le64(in + 48);
	return ATOLOG_OK;
}

int seal_encode(uint64_t last_seq, msgpack_sbuffer *out)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, 1) ||
	    msgpack_pack_str_with_body(&pk, "last_seq", 8) ||
	    msgpack_pack_uint64(&pk, last_seq))
		return err_set(ENOMEM, "encoding a seal frame");
	return ATOLOG_OK;
}

int frame_reserve_header(msgpack_sbuffer *out)
{
	static const char header[FRAME_HEADER_SIZE];

	return msgpack_sbuffer_write(out, header, sizeof(header)) == 0
		       ? ATOLOG_OK
		       : err_set(ENOMEM, "allocating a frame");
}

int seal_frame_build(uint64_t last_seq, uint8_t flags, msgpack_sbuffer *out)
{
	int rc;

	msgpack_sbuffer_init(out);
	rc = frame_reserve_header(out);
	if (rc == ATOLOG_OK)
		rc = seal_encode(last_seq, out);
	if (rc != ATOLOG_OK)
		return rc;
	frame_header_write((uint8_t *)out->data, FRAME_KIND_SEAL, flags, 0,
			   (uint32_t)(out->size - FRAME_HEADER_SIZE));
	return ATOLOG_OK;
}

int seal_decode(const void *payload, size_t len, uint64_t *last_seq)
{
	msgpack_unpacked mp;
	msgpack_unpack_return mrc = MSGPACK_UNPACK_PARSE_ERROR;
	size_t off = 0;
	bool found = false;

	msgpack_unpacked_init(&mp);
	if (mp_is_bounded(payload, len, 2))
		mrc = msgpack_unpack_next(&mp, payload, len, &off);
	if (mrc == MSGPACK_UNPACK_SUCCESS && mp.data.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object_map *map = &mp.data.via.map;

		for (uint32_t i = 0; i < map->size; i++) {
			const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;

			if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 8 &&
			    memcmp(k->via.str.ptr, "last_seq", 8) == 0 &&
			    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				*last_seq = v->via.u64;
				found = true;
			}
		}
	}
	msgpack_unpacked_destroy(&mp);
	if (mrc == MSGPACK_UNPACK_NOMEM_ERROR) /* the reader's want, not damage */
		return err_set(ENOMEM, "decoding a seal");
	return found ? ATOLOG_OK
		     : err_set(ATOLOG_CORRUPT, "seal frame lacks last_seq");
}
