/*
 * codec.h - byte formats: the interaction record (msgpack), the frame that
 * carries it in a segment (length, kind, sequence, XXH3-64), the JSON shape
 * the seed service speaks, UUIDs, UTF-8 and time.
 *
 * The codec knows nothing of files, indexes or the engine: it turns values
 * into bytes and bytes into values, and it is the only place that decides
 * whether a record is well formed. docs/FORMAT.md is the normative spec of
 * every layout here.
 */
#ifndef ATOLOG_CODEC_H
#define ATOLOG_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "atolog.h"
#include "bytes.h"

/* A byte string that is not NUL-terminated (msgpack strings are not). */
struct text {
	const char *ptr;
	size_t len;
};

/* ------------------------------------------------------------------------
 * Text helpers (codec/text.c).
 */
bool text_is_utf8(const char *s, size_t len);
bool text_is_blank(const char *s, size_t len); /* only spaces/controls */
/* False when a \uXXXX escape in JSON text is a surrogate without its other
 * half (*at: the offset of the backslash). */
bool json_surrogates_paired(const char *s, size_t len, size_t *at);
/* A C string as a text; NULL reads as "" (absent fields are empty). */
struct text text_from_cstr(const char *s);
/* s without surrounding ASCII blanks (space, \t \n \v \f \r). */
struct text text_trim(const char *s, size_t len);
/* The registry's matching key: text_trim, then ASCII lowered (never the
 * locale's rules). out must hold len + 1 bytes; returns the key's length. */
size_t text_fold_name(const char *s, size_t len, char *out);

/* ------------------------------------------------------------------------
 * Time (codec/time.c). Microseconds since the epoch, UTC.
 */
#define TIME_US_PER_SEC INT64_C(1000000)
/* The range records may hold: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z */
#define TIME_MIN_US (INT64_C(-62135596800) * TIME_US_PER_SEC)
#define TIME_MAX_US (INT64_C(253402300800) * TIME_US_PER_SEC - 1)
/* atolog_time_parse without touching the error slot's owner. */
int time_parse(const char *text, int64_t *out_us);
int64_t time_now_us(void);
/* Microseconds of CLOCK_MONOTONIC, for durations. */
int64_t time_mono_us(void);
/* Rounds down to a whole second (also before 1970); us must be at least
 * INT64_MIN + TIME_US_PER_SEC, which every parsed time is. */
int64_t time_floor_second(int64_t us);

/* ------------------------------------------------------------------------
 * UUIDs (codec/uuid.c).
 */
#define UUID_SIZE 16
int uuid_parse(const char *text, uint8_t out[UUID_SIZE]);
void uuid_format(const uint8_t id[UUID_SIZE], char out[ATOLOG_ID_TEXT_LEN + 1]);

/* Generates time-ordered UUID v7 ids (RFC 9562, "method 1": a 12-bit
 * counter in rand_a keeps ids from one generator strictly increasing even
 * within a millisecond). Not thread-safe: the caller serialises. */
struct uuid_v7_gen {
	int64_t last_ms;
	uint16_t counter;
	uint8_t pool[256]; /* getrandom() bytes, refilled when used up */
	size_t pool_used;
};
void uuid_v7_init(struct uuid_v7_gen *gen);
int uuid_v7_next(struct uuid_v7_gen *gen, int64_t now_us,
		 uint8_t out[UUID_SIZE]);

/* ------------------------------------------------------------------------
 * Records (codec/record.c): an interaction as a msgpack map.
 */
#define RECORD_VERSION 1

/* The validated content of one interaction, pointing at caller memory. */
struct record_fields {
	uint8_t id[UUID_SIZE];
	int64_t created_at;
	struct text prompt;
	struct text response;
	struct text response_summary;
	struct text project;
	struct text client;
	struct text session_id;
	struct text *memories_used;
	size_t n_memories_used;
	struct text *chunks_used;
	size_t n_chunks_used;
	/* Exactly one of these holds the context pack (or neither: {}). */
	struct text context_bytes;           /* encoded map, from callers */
	const msgpack_object *context_mp;    /* decoded, from the log */
};

/* Owns what record_input_init allocated. */
struct record_input {
	struct record_fields fields;
	msgpack_sbuffer context_sb; /* behind fields.context_bytes */
	struct text *refs_owned;
};

/*
 * Validates a caller's interaction (prompt not blank, UTF-8, limits,
 * context_pack a JSON object) into in->fields, without id or time (left
 * zero, for the caller to fill). Returns ATOLOG_OK, ATOLOG_INVALID,
 * ATOLOG_TOOBIG or ENOMEM with the message naming the field.
 */
int record_input_init(struct record_input *in, const atolog_interaction *src);
void record_input_free(struct record_input *in);

/* Checks a name (project, client, session) against the record rules. */
int record_check_name(const char *field, const char *s, size_t len);

/* Encodes fields as the record's msgpack map, appending to out. */
int record_encode(const struct record_fields *f, msgpack_sbuffer *out);

/* A decoded payload: fields point into the payload buffer and into the
 * msgpack zone, which live as long as the record_view. */
struct record_view {
	struct record_fields fields;
	msgpack_unpacked unpacked;
	struct text *refs; /* storage behind fields.*_used */
};

/*
 * Decodes a payload already checked by its frame checksum. Bounds every
 * length before msgpack-c sees the bytes, skips unknown keys, and requires
 * id, created_at and prompt. Returns ATOLOG_OK or ATOLOG_CORRUPT (message
 * without location: the caller adds segment and offset) or ENOMEM.
 */
int record_view_decode(struct record_view *view, const void *payload,
		       size_t len);
void record_view_free(struct record_view *view);

/* Copies fields into one malloc'ed block that atolog_interaction_free()
 * (plain free) releases; context_pack rendered as compact JSON. */
int record_fields_flatten(const struct record_fields *f, uint64_t seq,
			  atolog_interaction **out);

/* ------------------------------------------------------------------------
 * Registry frames (codec/registry.c): a project and its aliases,
 *   {"op": "project_add", "name": str, "aliases": [str, ...]}
 */
int registry_encode(struct text name, const struct text *aliases,
		    size_t n_aliases, msgpack_sbuffer *out);

struct registry_view {
	struct text name;
	struct text *aliases;
	size_t n_aliases;
	msgpack_unpacked unpacked;
};
/* ATOLOG_OK or ATOLOG_CORRUPT; unknown ops are ATOLOG_VERSION. */
int registry_decode(struct registry_view *view, const void *payload, size_t len);
void registry_view_free(struct registry_view *view);

/* ------------------------------------------------------------------------
 * msgpack safety (codec/mpcheck.c).
 */
/* True when buf holds exactly one msgpack object whose every length and
 * count fits in the buffer and whose containers nest at most max_depth. */
bool mp_is_bounded(const void *buf, size_t len, unsigned max_depth);

/* ------------------------------------------------------------------------
 * context_pack: JSON object <-> msgpack map, and JSON output helpers
 * (codec/context.c).
 */
/* Appends the msgpack map of a JSON object text to out. ATOLOG_INVALID
 * (not JSON, not an object), ATOLOG_TOOBIG (nested too deep), ENOMEM. */
int context_json_to_msgpack(const char *json, size_t len, msgpack_sbuffer *out);
/* Renders a msgpack object (from the log) as compact JSON text, malloc'ed;
 * ATOLOG_CORRUPT if it holds what JSON cannot (non-string keys, bin, ext). */
int context_to_json(const msgpack_object *obj, char **out);
/* Emits a msgpack object into a generator; -1 if JSON cannot hold it. */
int context_gen(yajl_gen g, const msgpack_object *obj);
/* A compact generator. */
yajl_gen json_gen_new(void);
/* Emits a string after checking its UTF-8 strictly (yajl's own check lets
 * overlong forms and surrogates through); -1 if it is not valid. */
int json_gen_string(yajl_gen g, const char *s, size_t len);
/* Copies the generator's text out (malloc'ed, NUL-terminated). */
int json_gen_take(yajl_gen g, char **out);
/* yajl's reason for a parse error, on one line, with the byte offset. */
void json_parse_reason(yajl_handle h, const char *text, size_t len, char *out,
		       size_t size);
/* Emits the JSON text as one value of the generator's document: 0, -1 if
 * it is not JSON, ENOMEM. */
int json_gen_copy(yajl_gen g, const char *json, size_t len);

/* ------------------------------------------------------------------------
 * Frames (codec/frame.c). See docs/FORMAT.md, "Frame".
 */
#define FRAME_HEADER_SIZE 24
#define FRAME_KIND_RECORD 1   /* an interaction */
#define FRAME_KIND_REGISTRY 2 /* a project registry change */
#define FRAME_KIND_SEAL 3     /* last frame of a sealed segment */
#define FRAME_PAYLOAD_MAX ATOLOG_RECORD_MAX_BYTES
#define FRAME_FLAG_SYNC_START 0x01 /* first frame after a completed sync */
#define FRAME_FLAGS_KNOWN FRAME_FLAG_SYNC_START

struct frame_header {
	uint64_t checksum;
	uint32_t payload_len;
	uint8_t kind;
	uint8_t flags;
	uint16_t reserved;
	uint64_t seq;
};

/* Fills the header at the start of frame, whose payload of len bytes
 * follows it, and computes the checksum over both. */
void frame_header_write(uint8_t *frame, uint8_t kind, uint8_t flags,
			uint64_t seq, uint32_t len);

/* Reads a header; false if its fields cannot belong to a frame (kind 0,
 * an unknown flag or reserved bit set, length over FRAME_PAYLOAD_MAX). */
bool frame_header_read(const uint8_t in[FRAME_HEADER_SIZE],
		       struct frame_header *out);

/* The seq of a frame whose header is known good (read back by checksum). */
uint64_t frame_seq_of(const uint8_t frame[FRAME_HEADER_SIZE]);

/* True when every byte of the header is zero (space never written). */
bool frame_header_is_zero(const uint8_t in[FRAME_HEADER_SIZE]);

/* ------------------------------------------------------------------------
 * Segment header (codec/frame.c). See docs/FORMAT.md, "Segment".
 */
#define SEGMENT_HEADER_SIZE 64
#define SEGMENT_HEADER_SUM_AT 56 /* its XXH3-64, of the bytes before it */
#define SEGMENT_MAGIC "ATOLOGSG"
#define SEGMENT_FORMAT_MAJOR 1 /* readers refuse a higher major */
#define SEGMENT_FORMAT_MINOR 1

struct segment_header {
	uint16_t major, minor;
	uint64_t segment_id;
	uint8_t store_id[UUID_SIZE];
	int64_t created_at;
	uint64_t compaction; /* 0, or the nonce of the compaction that wrote it */
};

void segment_header_write(uint8_t out[SEGMENT_HEADER_SIZE],
			  const struct segment_header *h);
/* ATOLOG_OK; ATOLOG_CORRUPT (bad magic or checksum); ATOLOG_VERSION. */
int segment_header_read(const uint8_t in[SEGMENT_HEADER_SIZE],
			struct segment_header *out);

/* Encodes a seal frame's payload: {"last_seq": s}, the highest sequence
 * number the store had given when the segment was sealed. */
int seal_encode(uint64_t last_seq, msgpack_sbuffer *out);
/* Appends room for a frame header (zeros, for frame_header_write once
 * the payload follows): ATOLOG_OK or ENOMEM. */
int frame_reserve_header(msgpack_sbuffer *out);
/* A whole seal frame (seq 0, the given flags) into out, initialised here:
 * ATOLOG_OK or ENOMEM (out is then empty, and destroying it is safe). */
int seal_frame_build(uint64_t last_seq, uint8_t flags, msgpack_sbuffer *out);
/* Reads it back (other keys are skipped); ATOLOG_CORRUPT without it. */
int seal_decode(const void *payload, size_t len, uint64_t *last_seq);

/* True when the checksum of the frame (header then len payload bytes,
 * contiguous) matches. */
bool frame_checksum_ok(const uint8_t *frame, uint32_t len);

#endif
