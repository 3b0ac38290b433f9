package devserver

import (
	"os"
	"path/filepath"
	"testing"
)

// A data directory created before task queues had one partition keeps
// Temporal's four: fewer read partitions would strand the tasks queued on
// the others, and journeys waiting on them would never move again.
func TestTaskQueuePartitions(t *testing.T) {
	fresh := t.TempDir()
	db := filepath.Join(fresh, "temporal.db")
	if n, err := taskQueuePartitions(fresh, db); err != nil || n != 1 {
		t.Fatalf("new data directory: %d partitions, err %v; want 1", n, err)
	}
	if err := os.WriteFile(db, []byte("created with one partition"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := taskQueuePartitions(fresh, db); err != nil || n != 1 {
		t.Fatalf("restart of a directory created with one partition: %d, err %v; want 1", n, err)
	}

	older := t.TempDir()
	db = filepath.Join(older, "temporal.db")
	if err := os.WriteFile(db, []byte("created by an earlier version"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if n, err := taskQueuePartitions(older, db); err != nil || n != 4 {
			t.Fatalf("older data directory: %d partitions, err %v; want 4", n, err)
		}
	}
}
