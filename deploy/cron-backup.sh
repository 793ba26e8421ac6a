#!/bin/sh
# cron-backup.sh - daily atolog snapshot, then retention cleanup.
#
# Safe while `atolog serve` runs on the same store: `snapshot create`
# opens the store read-only beside the writer and copies a consistent
# point of it (sealed segments hard-linked); `snapshot cleanup` only
# touches finished snapshots in the backup directory.
#
#   ATOLOG        the atolog binary            (default: atolog on PATH)
#   ATOLOG_DATA   the store                     (default: ./data)
#   BACKUP_DIR    where snapshots go            (default: $ATOLOG_DATA.snapshots)
#   KEEP_DAILY, KEEP_WEEKLY, KEEP_LAST          (default: 7, 4, 7)
#
# crontab (03:17 UTC every day):
#   17 3 * * * ATOLOG_DATA=/srv/atolog/data /srv/atolog/deploy/cron-backup.sh >>/var/log/atolog-backup.log 2>&1
set -eu

ATOLOG=${ATOLOG:-atolog}
ATOLOG_DATA=${ATOLOG_DATA:-./data}
BACKUP_DIR=${BACKUP_DIR:-$ATOLOG_DATA.snapshots}
KEEP_DAILY=${KEEP_DAILY:-7}
KEEP_WEEKLY=${KEEP_WEEKLY:-4}
KEEP_LAST=${KEEP_LAST:-7}

mkdir -p "$BACKUP_DIR"
name=$(date -u +%Y%m%dT%H%M%SZ)
"$ATOLOG" --data "$ATOLOG_DATA" snapshot create "$BACKUP_DIR/$name"
if ! "$ATOLOG" snapshot verify "$BACKUP_DIR/$name" >/dev/null; then
	# Kept for a look, under a name retention never counts as a snapshot.
	mv "$BACKUP_DIR/$name" "$BACKUP_DIR/.failed-$name"
	echo "cron-backup: $name failed verify; kept as .failed-$name" >&2
	exit 3
fi
"$ATOLOG" snapshot cleanup "$BACKUP_DIR" --keep-last "$KEEP_LAST" \
	--keep-daily "$KEEP_DAILY" --keep-weekly "$KEEP_WEEKLY" --apply
