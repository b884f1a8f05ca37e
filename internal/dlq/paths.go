package dlq

import (
	"path/filepath"
	"regexp"
	"time"
)

// unsafeName are the runs of characters a queue or vhost name may hold
// that have no place in a file name (separators, spaces, shell specials).
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func fileSafe(s string) string { return unsafeName.ReplaceAllString(s, "_") }

// JournalPath is where replays of queue in vhost keep their journal under
// stateDir ($XDG_STATE_HOME): one file per vhost and queue, so a run
// finds what the killed run before it, on the same queue, left behind.
func JournalPath(stateDir, vhost, queue string) string {
	return filepath.Join(stateDir, "mqctl", "replay", fileSafe(vhost)+"--"+fileSafe(queue)+".jsonl")
}

// ArchivePath is the default archive of a purge of queue started at at,
// in the working directory: QUEUE.purged.TIMESTAMP.jsonl, so a purge never
// appends to an older one by accident.
func ArchivePath(queue string, at time.Time) string {
	return fileSafe(queue) + ".purged." + at.UTC().Format("20060102T150405Z") + ".jsonl"
}
