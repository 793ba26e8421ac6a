/*
 * test_verify.c - atolog_store_verify and `atolog verify`.
 *
 * A verify must pass a sound store (several segments, registry frames,
 * sealed and active), and must find, name and count what is wrong: a
 * flipped byte in a sealed segment, an index entry removed behind the
 * engine's back (with LMDB directly), a by_id row removed. It must also
 * pass, again and again, on a store a writer in another process is
 * appending to: the tail past the index is checked but not required.
 * The CLI must say it in one JSON line and exit 0 or 3.
 */
#include <fcntl.h>
#include <pthread.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define N_RECORDS 300
#define SMALL_SEGMENT 8192 /* several segments from a few hundred records */

static const char *cli_path;

static void fill(const char *dir, int n, int offset)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE, .segment_size = SMALL_SEGMENT };
	atolog_store *s;
	static const char *const aliases[] = { "ato" };

	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	if (!s)
		return;
	if (offset == 0)
		CHECK_OK(atolog_project_add(s, "ATOLOG", aliases, 1), s);
	for (int i = 0; i < n; i++) {
		char prompt[64], session[16];
		atolog_interaction in = { .prompt = prompt, .session_id = session,
					  .project = i % 3 ? "ato" : "other",
					  .client = i % 2 ? "manual" : "" };

		snprintf(prompt, sizeof(prompt), "prompt %d", offset + i);
		snprintf(session, sizeof(session), "s%d", i % 7);
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/* Verifies read-only in a child (one open per process); the report comes
 * back through a pipe. Returns the code. */
static int verify_in_child(const char *dir, atolog_verify_report *out)
{
	int fds[2], status, rc = -1;
	pid_t pid;

	if (pipe(fds) != 0)
		abort();
	pid = fork();
	if (pid == 0) {
		atolog_options opts = { .flags = ATOLOG_OPEN_READONLY };
		atolog_store *s;
		atolog_verify_report r = { 0 };

		close(fds[0]);
		rc = atolog_store_open(dir, &opts, &s);
		if (rc == ATOLOG_OK) {
			rc = atolog_store_verify(s, NULL, NULL, &r);
			atolog_store_close(s);
		}
		if (write(fds[1], &rc, sizeof(rc)) != sizeof(rc) ||
		    write(fds[1], &r, sizeof(r)) != sizeof(r))
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &rc, sizeof(rc)) != sizeof(rc) ||
	    read(fds[0], out, sizeof(*out)) != sizeof(*out))
		rc = -1;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return rc;
}

static void test_sound_store(const char *dir)
{
	atolog_verify_report r;

	fill(dir, N_RECORDS, 0);
	CHECK_RC(verify_in_child(dir, &r), ATOLOG_OK, NULL);
	CHECK_INT(r.problems, 0);
	CHECK_INT(r.records, N_RECORDS);
	CHECK_INT(r.index_entries, N_RECORDS);
	CHECK_INT(r.unindexed_frames, 0);
	CHECK(r.segments > 3);
	/* Every record, the registration, and a seal per sealed segment. */
	CHECK_INT(r.frames, N_RECORDS + 1 + (r.segments - 1));
	CHECK_STR(r.first_problem, "");
}

static void test_flipped_byte(const char *dir)
{
	char *seg = check_path(dir, "segments/0000000000000002.seg");
	atolog_verify_report r;

	fill(dir, N_RECORDS, 0);
	check_flip_byte(seg, 300);
	CHECK_RC(verify_in_child(dir, &r), ATOLOG_CORRUPT, NULL);
	CHECK(r.problems >= 1);
	if (!strstr(r.first_problem, "segment 0000000000000002 offset"))
		CHECK_FAILF("%s", r.first_problem);
	free(seg);
}

/* The store's index, opened with LMDB directly, a write transaction on
 * database db begun: damage is done through it. */
static MDB_env *damage_begin(const char *dir, const char *db, MDB_txn **txn,
			     MDB_dbi *dbi)
{
	char *path = check_path(dir, "index");
	MDB_env *env;

	CHECK(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 16);
	CHECK(mdb_env_open(env, path, 0, 0644) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, txn) == 0);
	CHECK(mdb_dbi_open(*txn, db, 0, dbi) == 0);
	free(path);
	return env;
}

static void damage_end(MDB_env *env, MDB_txn *txn)
{
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
}

/* Removes the first entry of one LMDB database, as damage would. */
static void drop_first_entry(const char *dir, const char *db)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = damage_begin(dir, db, &txn, &dbi);
	MDB_cursor *c;
	MDB_val k, v;

	CHECK(mdb_cursor_open(txn, dbi, &c) == 0);
	CHECK(mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0);
	CHECK(mdb_cursor_del(c, 0) == 0);
	mdb_cursor_close(c);
	damage_end(env, txn);
}

/* Moves the state row's last frame by one byte, as damage would. */
static void bend_state(const char *dir)
{
	MDB_val k = { .mv_size = 5, .mv_data = "state" }, v, nv;
	uint8_t buf[64];
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = damage_begin(dir, "meta", &txn, &dbi);

	CHECK(mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof(buf));
	memcpy(buf, v.mv_data, sizeof(buf));
	buf[32]++; /* last_frame_offset, LE64 */
	nv = (MDB_val){ .mv_size = sizeof(buf), .mv_data = buf };
	CHECK(mdb_put(txn, dbi, &k, &nv, 0) == 0);
	damage_end(env, txn);
}

/* Adds one to the first count, as a lost update would look. */
static void bump_count(const char *dir)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_env *env = damage_begin(dir, "counts", &txn, &dbi);
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t buf[8];

	CHECK(mdb_cursor_open(txn, dbi, &c) == 0);
	CHECK(mdb_cursor_get(c, &k, &v, MDB_FIRST) == 0 && v.mv_size == sizeof(buf));
	memcpy(buf, v.mv_data, sizeof(buf));
	buf[0]++;
	v = (MDB_val){ .mv_size = sizeof(buf), .mv_data = buf };
	CHECK(mdb_cursor_put(c, &k, &v, MDB_CURRENT) == 0);
	mdb_cursor_close(c);
	damage_end(env, txn);
}

static void test_state_damage(const char *dir)
{
	atolog_verify_report r;

	fill(dir, N_RECORDS, 0);
	bend_state(dir);
	CHECK_RC(verify_in_child(dir, &r), ATOLOG_CORRUPT, NULL);
	if (!strstr(r.first_problem, "the index's state names a frame"))
		CHECK_FAILF("%s", r.first_problem);
}

static void test_count_damage(const char *dir)
{
	atolog_verify_report r;

	fill(dir, N_RECORDS, 0);
	bump_count(dir);
	CHECK_RC(verify_in_child(dir, &r), ATOLOG_CORRUPT, NULL);
	if (!strstr(r.first_problem, "counts disagree"))
		CHECK_FAILF("%s", r.first_problem);
}

static void test_index_damage(const char *root)
{
	static const struct {
		const char *db, *says;
	} cases[] = {
		{ "by_time", "by_time holds 299 entries for 300" },
		{ "by_session", "by_session holds 299 entries for 300" },
		{ "by_id", "names an id by_id does not hold" },
		{ "registry", "the registry does not map" },
		{ "by_seq", "by_seq holds 299 entries for 300" },
		{ "counts", "counts disagree with" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[32];
		char *dir;
		atolog_verify_report r;

		snprintf(name, sizeof(name), "damage%zu", i);
		dir = check_path(root, name);
		fill(dir, N_RECORDS, 0);
		drop_first_entry(dir, cases[i].db);
		CHECK_RC(verify_in_child(dir, &r), ATOLOG_CORRUPT, NULL);
		if (!strstr(r.first_problem, cases[i].says))
			CHECK_FAILF("%s", r.first_problem);
		/* A dropped by_id row also orphans the secondary entries. */
		if (strcmp(cases[i].db, "by_id") == 0)
			CHECK(r.problems >= 5);
		free(dir);
	}
}

static void *live_thread(void *arg)
{
	atolog_store *s = arg;

	for (long i = 0;; i++) {
		char prompt[32];
		atolog_interaction in = { .prompt = prompt, .session_id = "live" };

		snprintf(prompt, sizeof(prompt), "live %ld", i);
		if (atolog_interaction_record(s, &in, NULL) != ATOLOG_OK)
			return NULL;
		/* Steady, not flat out: the store stays small enough that
		 * eight verifies take seconds, and the tail still moves. */
		usleep(300);
	}
}

/* Four threads appending, default segments, until killed: the tail keeps
 * moving between a verify's reads (sync always: a group per fdatasync,
 * so the store stays small enough to verify 8 times). */
static void live_writer(const char *dir)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_ALWAYS };
	pthread_t t[4];
	atolog_store *s;

	alarm(120);
	if (atolog_store_open(dir, &opts, &s) != ATOLOG_OK)
		_exit(1);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, live_thread, s);
	pthread_join(t[0], NULL);
	_exit(0);
}

/* A writer in another process appends while verifies run beside it. */
static void test_live_store(const char *dir)
{
	pid_t writer;
	int status;

	fill(dir, N_RECORDS, 0);
	writer = fork();
	if (writer == 0)
		live_writer(dir);
	usleep(100 * 1000);
	for (int i = 0; i < 8; i++) {
		atolog_verify_report r;
		int rc = verify_in_child(dir, &r);

		if (rc != ATOLOG_OK)
			CHECK_FAILF("%s", r.first_problem);
		CHECK(r.records >= N_RECORDS);
		CHECK_INT(r.index_entries, r.records);
	}
	kill(writer, SIGKILL);
	waitpid(writer, &status, 0);
}

/* `atolog verify`: one JSON line, exit 0, then 3 once damaged. */
static void test_cli(const char *dir)
{
	char cmd[4096], out[4096] = "";
	char *seg = check_path(dir, "segments/0000000000000001.seg");
	FILE *p;
	int status;

	fill(dir, 50, 0);
	snprintf(cmd, sizeof(cmd), "%s --data %s verify 2>/dev/null", cli_path, dir);
	p = popen(cmd, "r");
	if (!p || !fgets(out, sizeof(out), p))
		CHECK_FAILF("%s", "atolog verify printed nothing");
	status = p ? pclose(p) : -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(strstr(out, "\"records\":50,") != NULL);
	CHECK(strstr(out, "\"problems\":0}") != NULL);
	check_flip_byte(seg, 100);
	p = popen(cmd, "r");
	if (!p || !fgets(out, sizeof(out), p))
		CHECK_FAILF("%s", "atolog verify printed nothing");
	status = p ? pclose(p) : -1;
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CHECK(strstr(out, "\"first_problem\":\"segment 0000000000000001 offset") != NULL);
	free(seg);
}

int main(int argc, char **argv)
{
	static const struct check_case tests[] = {
		{ "sound_store", test_sound_store },
		{ "flipped_byte", test_flipped_byte },
		{ "index_damage", test_index_damage },
		{ "state_damage", test_state_damage },
		{ "count_damage", test_count_damage },
		{ "live_store", test_live_store },
		{ "cli", test_cli },
	};

	check_args(argc, argv);
	cli_path = getenv("ATOLOG_CLI");
	if (!cli_path) {
		fprintf(stderr, "test_verify: set ATOLOG_CLI to the atolog binary\n");
		return 2;
	}
	check_rand_init("test_verify");
	return check_run_cases("test_verify", tests, sizeof(tests) / sizeof(tests[0]));
}
