package bulkimport_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/parcours/parcours/pkg/bulkimport"
	"github.com/parcours/parcours/pkg/pgtest"
	"github.com/parcours/parcours/pkg/workspace"
)

func TestImportStoreKeepsProgressPerWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	wss := workspace.NewStore(pool)
	ws, err := wss.Create(ctx, "acme", "Acme")
	if err != nil {
		t.Fatal(err)
	}
	other, err := wss.Create(ctx, "other", "Other")
	if err != nil {
		t.Fatal(err)
	}
	s := bulkimport.NewStore(pool)
	im, err := s.Create(ctx, bulkimport.Import{WorkspaceID: ws.ID, Name: "contacts.csv", Format: bulkimport.CSV, Source: "crm",
		KeyID: uuid.NewString(), FileSHA256: "abc", FileBytes: 42, Mapping: []byte(`{"columns":{"Email":{"identifier":"email"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if im.Status != bulkimport.StatusPending || im.ID == "" || len(im.BadRows) != 0 || im.BadRows == nil {
		t.Fatalf("created %+v", im)
	}
	if err := s.Start(ctx, ws.ID, im.ID, 10); err != nil {
		t.Fatal(err)
	}
	p := bulkimport.Progress{Processed: 5, Accepted: 4, Rejected: 1, BadRows: []bulkimport.BadRow{{Line: 3, Field: "Email", Reason: "is empty"}}}
	if err := s.SaveProgress(ctx, ws.ID, im.ID, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, ws.ID, im.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != bulkimport.StatusRunning || got.TotalRows != 10 || got.ProcessedRows != 5 || got.StartedAt == nil || got.BadRows[0].Line != 3 {
		t.Fatalf("running %+v", got)
	}
	if err := s.Finish(ctx, ws.ID, im.ID, p, errors.New("ingest: database went away")); err != nil {
		t.Fatal(err)
	}
	got, err = s.Get(ctx, ws.ID, im.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != bulkimport.StatusFailed || got.Error != "ingest: database went away" || got.FinishedAt == nil {
		t.Fatalf("failed %+v", got)
	}
	// Another workspace sees nothing.
	if _, err := s.Get(ctx, other.ID, im.ID); !errors.Is(err, bulkimport.ErrNotFound) {
		t.Fatalf("other workspace Get: %v, want ErrNotFound", err)
	}
	if err := s.Start(ctx, other.ID, im.ID, 1); !errors.Is(err, bulkimport.ErrNotFound) {
		t.Fatalf("other workspace Start: %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx, other.ID, 10); err != nil || len(list) != 0 {
		t.Fatalf("other workspace List: %v %v", list, err)
	}
	if list, err := s.List(ctx, ws.ID, 10); err != nil || len(list) != 1 || list[0].ID != im.ID {
		t.Fatalf("List: %v %v", list, err)
	}
}
