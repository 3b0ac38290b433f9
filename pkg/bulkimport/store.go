package bulkimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Status is where an import is.
type Status string

// Statuses of an import.
const (
	StatusPending Status = "pending" // received, waiting for its turn
	StatusRunning Status = "running" // rows being imported
	StatusDone    Status = "done"    // every row was imported or rejected
	StatusFailed  Status = "failed"  // stopped; see Error
)

// MaxBadRows is how many bad rows an import keeps for a person to read;
// every one of them is in the quarantine.
const MaxBadRows = 20

// ErrNotFound is returned for an import that is not in the workspace.
var ErrNotFound = errors.New("import not found")

// BadRow says why a row was not imported.
type BadRow struct {
	Line   int    `json:"line"`
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

// Import is one uploaded file and how far its import went.
type Import struct {
	ID            string          `json:"id"`
	WorkspaceID   string          `json:"workspace_id"`
	Name          string          `json:"name"`
	Format        Format          `json:"format"`
	Source        string          `json:"source"`
	KeyID         string          `json:"key_id"`
	FileSHA256    string          `json:"file_sha256"`
	FileBytes     int64           `json:"file_bytes"`
	Mapping       json.RawMessage `json:"mapping"`
	Status        Status          `json:"status"`
	TotalRows     int             `json:"total_rows"`
	ProcessedRows int             `json:"processed_rows"`
	Accepted      int             `json:"accepted"`
	Duplicates    int             `json:"duplicates"`
	Rejected      int             `json:"rejected"`
	BadRows       []BadRow        `json:"bad_rows"`
	Error         string          `json:"error,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	StartedAt     *time.Time      `json:"started_at,omitempty"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
}

// Progress is the running count of an import.
type Progress struct {
	Processed  int
	Accepted   int
	Duplicates int
	Rejected   int
	// BadRows are the first MaxBadRows bad rows.
	BadRows []BadRow
}

// Add counts one chunk: its rows, what ingestion did with its records, and
// its bad rows.
func (p *Progress) Add(c Chunk, accepted, duplicates int) {
	p.Processed += c.Rows()
	p.Accepted += accepted
	p.Duplicates += duplicates
	p.Rejected += len(c.Bad)
	for _, b := range c.Bad {
		if len(p.BadRows) >= MaxBadRows {
			break
		}
		p.BadRows = append(p.BadRows, BadRow{Line: b.Line, Field: b.Field, Reason: b.Reason})
	}
}

// Store keeps imports in PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const columns = `id::text, workspace_id::text, name, format, source, key_id::text, file_sha256, file_bytes, mapping,
	status, total_rows, processed_rows, accepted, duplicates, rejected, bad_rows, coalesce(error, ''),
	created_at, started_at, finished_at`

func scan(row pgx.Row) (Import, error) {
	var im Import
	var badRows []byte
	err := row.Scan(&im.ID, &im.WorkspaceID, &im.Name, &im.Format, &im.Source, &im.KeyID, &im.FileSHA256, &im.FileBytes, &im.Mapping,
		&im.Status, &im.TotalRows, &im.ProcessedRows, &im.Accepted, &im.Duplicates, &im.Rejected, &badRows, &im.Error,
		&im.CreatedAt, &im.StartedAt, &im.FinishedAt)
	if err != nil {
		return im, err
	}
	if err := json.Unmarshal(badRows, &im.BadRows); err != nil {
		return im, fmt.Errorf("decode bad rows of import %s: %w", im.ID, err)
	}
	if im.BadRows == nil {
		im.BadRows = []BadRow{}
	}
	return im, nil
}

// Create records a new, pending import. ID, status, counts and times are
// set by the store.
func (s *Store) Create(ctx context.Context, im Import) (Import, error) {
	out, err := scan(s.pool.QueryRow(ctx, `
		INSERT INTO imports (workspace_id, name, format, source, key_id, file_sha256, file_bytes, mapping)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+columns,
		im.WorkspaceID, im.Name, im.Format, im.Source, im.KeyID, im.FileSHA256, im.FileBytes, im.Mapping))
	if err != nil {
		return out, fmt.Errorf("create import %q: %w", im.Name, err)
	}
	return out, nil
}

// Start marks an import running, with the number of rows of its file.
func (s *Store) Start(ctx context.Context, workspaceID, id string, totalRows int) error {
	return s.exec(ctx, "start import "+id, `
		UPDATE imports SET status = 'running', total_rows = $3, started_at = now()
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id, totalRows)
}

// SaveProgress records how far a running import went.
func (s *Store) SaveProgress(ctx context.Context, workspaceID, id string, p Progress) error {
	bad, err := badRowsJSON(p.BadRows)
	if err != nil {
		return err
	}
	return s.exec(ctx, "save progress of import "+id, `
		UPDATE imports SET processed_rows = $3, accepted = $4, duplicates = $5, rejected = $6, bad_rows = $7
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id, p.Processed, p.Accepted, p.Duplicates, p.Rejected, bad)
}

// Finish records the end of an import: done when failure is nil, else
// failed with failure's message.
func (s *Store) Finish(ctx context.Context, workspaceID, id string, p Progress, failure error) error {
	bad, err := badRowsJSON(p.BadRows)
	if err != nil {
		return err
	}
	status, msg := StatusDone, (*string)(nil)
	if failure != nil {
		status = StatusFailed
		text := failure.Error()
		msg = &text
	}
	return s.exec(ctx, "finish import "+id, `
		UPDATE imports SET processed_rows = $3, accepted = $4, duplicates = $5, rejected = $6, bad_rows = $7,
		                   status = $8, error = $9, finished_at = now()
		WHERE workspace_id = $1 AND id = $2`, workspaceID, id, p.Processed, p.Accepted, p.Duplicates, p.Rejected, bad, status, msg)
}

// Get returns one import of the workspace.
func (s *Store) Get(ctx context.Context, workspaceID, id string) (Import, error) {
	im, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM imports WHERE workspace_id = $1 AND id = $2`, workspaceID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return im, ErrNotFound
	}
	if err != nil {
		return im, fmt.Errorf("load import %s: %w", id, err)
	}
	return im, nil
}

// List returns the workspace's imports, newest first.
func (s *Store) List(ctx context.Context, workspaceID string, limit int) ([]Import, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM imports WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2`, workspaceID, limit)
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	defer rows.Close()
	out := []Import{}
	for rows.Next() {
		im, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list imports: %w", err)
		}
		out = append(out, im)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	return out, nil
}

func (s *Store) exec(ctx context.Context, what, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

func badRowsJSON(rows []BadRow) ([]byte, error) {
	if rows == nil {
		rows = []BadRow{}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return nil, fmt.Errorf("encode bad rows: %w", err)
	}
	return b, nil
}
