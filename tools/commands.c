/*
 * commands.c - the table of atolog's subcommands: name, function, usage
 * and summary, in the order usage lists them. Apart from main.c so that
 * the commands (which look themselves up here for their usage line) link
 * without a main(), as the fuzz targets link them.
 */
#include <string.h>

#include "cli.h"

const struct command cli_commands[] = {
	{ "record", cmd_record, "< interaction.json",
	  "store one interaction read as a JSON object from stdin" },
	{ "get", cmd_get, "ID", "print one interaction" },
	{ "list", cmd_list,
	  "[--project P] [--session S] [--client C] [--since T] [--limit N]",
	  "interactions matching every filter, newest first" },
	{ "replay", cmd_replay, "SESSION", "a whole session, oldest first" },
	{ "project", cmd_project, "add NAME [--alias A]... | list",
	  "the project registry" },
	{ "stats", cmd_stats, "[--json]",
	  "records, sizes, segments, time range, counts by project and client" },
	{ "follow", cmd_follow,
	  "[--project P] [--session S] [--client C] [--since T | --from-seq N] [--limit N]",
	  "new interactions as they are committed, in seq order, like tail -f" },
	{ "verify", cmd_verify, "",
	  "check every frame's checksum and the index against the log (live store)" },
	{ "reindex", cmd_reindex, "",
	  "empty the index and rebuild it from the log (needs the writer lock)" },
	{ "snapshot", cmd_snapshot,
	  "create DEST | list DIR | verify SNAP | restore SNAP DATA_DIR [--force] | "
	  "cleanup DIR [--keep-last N] [--keep-daily D] [--keep-weekly W] [--apply]",
	  "consistent online copies of the store, and putting one back" },
	{ "compact", cmd_compact,
	  "[--older-than DURATION | --before T] [--project P] [--small BYTES] [--apply]",
	  "merge small sealed segments and remove old records (dry run unless --apply)" },
	{ "export", cmd_export,
	  "[--project P] [--session S] [--client C] [--since T] [--until T] "
	  "[--limit N] [--format jsonl|csv]",
	  "every matching interaction, oldest first, streamed (import reads it back)" },
	{ "import", cmd_import, "[FILE.jsonl | -]",
	  "store interactions from JSON Lines (ids kept; those present are skipped)" },
	{ "import-sqlite", cmd_import_sqlite, "PATH",
	  "move the seed service's SQLite database in (ids and times kept; rerun adds nothing)" },
	{ "serve", cmd_serve,
	  "[--listen HOST:PORT] [--threads N] [--writers N] [--token-file F] "
	  "[--max-body BYTES] "
	  "[--timeout S] [--max-connections N] [--backup-dir DIR]",
	  "the HTTP capture server (the seed's routes) on this store" },
	{ "tour", cmd_tour, "[--agents N] [--records N]",
	  "capture synthetic interactions from concurrent agents, then query them" },
	{ NULL, NULL, NULL, NULL },
};

const struct command *cli_find_command(const char *name)
{
	for (const struct command *c = cli_commands; c->name; c++) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}
