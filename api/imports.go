package api

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/bulkimport"
	"github.com/parcours/parcours/pkg/ingest"
)

const (
	// MaxImportBytes caps one uploaded file. Larger exports are split into
	// several files (re-importing a file is safe, so a failed part can be
	// sent again).
	MaxImportBytes = 100 << 20
	// importChunkRows is how many rows go to ingestion in one transaction:
	// large enough to amortise a transaction, small enough that progress
	// moves and locks are short.
	importChunkRows = 500
	// maxConcurrentImports bounds the imports a process runs at once; the
	// others wait, pending, so that imports do not starve live ingestion.
	maxConcurrentImports = 2
	// maxFormFieldBytes bounds the form fields besides the file.
	maxFormFieldBytes = bulkimport.MaxMappingBytes
	// importFinishTimeout bounds recording the end of an import that was
	// cancelled or failed: it runs on a fresh context.
	importFinishTimeout = 10 * time.Second
)

// importSourceRe is what a source may be called (as for write keys).
var importSourceRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// importJobs tracks the imports this server runs in the background. The
// zero value is ready to use.
type importJobs struct {
	once    sync.Once
	slots   chan struct{} // one per import allowed to run at once
	wg      sync.WaitGroup
	mu      sync.Mutex
	cancels map[string]context.CancelFunc
	closed  bool
}

func (j *importJobs) init() {
	j.once.Do(func() {
		j.slots = make(chan struct{}, maxConcurrentImports)
		j.cancels = map[string]context.CancelFunc{}
	})
}

// importView is an import as the API shows it.
type importView struct {
	bulkimport.Import
	StatusURL string `json:"status_url"`
}

func viewImport(im bulkimport.Import) importView {
	return importView{Import: im, StatusURL: "/v1/imports/" + im.ID}
}

// upload is an import request once its file is on disk.
type upload struct {
	path     string // temp file
	size     int64
	sha256   string
	fileName string
	name     string
	format   string
	source   string
	mapping  []byte
}

// createImport stores the uploaded file in a temp file, checks the mapping
// against the file's header and the workspace's identifiers, records the
// import and answers 202 with its status URL; the rows are imported in the
// background.
func (s *Server) createImport(c echo.Context) error {
	receivedAt := time.Now().UTC()
	k := keyFrom(c)
	up, err := s.receiveUpload(c)
	if up.path != "" {
		defer func() {
			if up.path != "" { // not handed over to the background import
				_ = os.Remove(up.path)
			}
		}()
	}
	if err != nil {
		return err
	}
	im, err := s.beginImport(c.Request().Context(), k.WorkspaceID, k.ID, &up, receivedAt)
	if err != nil {
		return err
	}
	v := viewImport(im)
	c.Response().Header().Set(echo.HeaderLocation, v.StatusURL)
	return c.JSON(http.StatusAccepted, v)
}

// beginImport checks an upload, records the import and starts it in the
// background, which then owns the file (up.path is cleared). keyID is the
// key that sent it, for the audit trail of every record. Errors are
// Problems naming the fields at fault.
func (s *Server) beginImport(ctx context.Context, workspaceID, keyID string, up *upload, receivedAt time.Time) (bulkimport.Import, error) {
	// Validate every field, naming each one at fault.
	var fieldErrs []FieldError
	format, ok := bulkimport.ParseFormat(up.format)
	switch {
	case up.format != "" && !ok:
		fieldErrs = append(fieldErrs, FieldError{Field: "format", Reason: fmt.Sprintf("%q is not csv or ndjson", up.format)})
	case up.format == "":
		if format, ok = bulkimport.FormatFromName(up.fileName); !ok {
			fieldErrs = append(fieldErrs, FieldError{Field: "format", Reason: "is missing and the file name does not tell (.csv, .ndjson, .jsonl): give csv or ndjson"})
		}
	}
	if up.source == "" {
		up.source = "crm"
	}
	if !importSourceRe.MatchString(up.source) {
		fieldErrs = append(fieldErrs, FieldError{Field: "source", Reason: "must be lower-case letters, digits, _ or -, such as crm, store or call_centre"})
	}
	if len(up.name) > 200 {
		fieldErrs = append(fieldErrs, FieldError{Field: "name", Reason: "may be at most 200 characters"})
	}
	if up.size == 0 {
		fieldErrs = append(fieldErrs, FieldError{Field: "file", Reason: "is empty"})
	}
	mapping, err := bulkimport.ParseMapping(up.mapping)
	if me := (*bulkimport.MappingError)(nil); errors.As(err, &me) {
		fieldErrs = append(fieldErrs, mappingFieldErrors(me)...)
	} else if err != nil {
		return bulkimport.Import{}, err
	}
	if len(fieldErrs) > 0 {
		return bulkimport.Import{}, invalid("The import was refused; nothing was imported.", fieldErrs...)
	}

	// Identifier traits must be identity traits of the workspace, or rows
	// would make anonymous profiles nobody can find.
	ws, err := s.Workspaces.Get(ctx, workspaceID)
	if err != nil {
		return bulkimport.Import{}, err
	}
	known := append(slices.Clone(ws.IdentityTraits), ws.UniqueIdentifier)
	traits := mapping.IdentifierTraits()
	for _, t := range sortedKeys(traits) {
		if !slices.Contains(known, t) {
			fieldErrs = append(fieldErrs, FieldError{Field: "mapping.columns." + traits[t] + ".identifier",
				Reason: fmt.Sprintf("%s is not an identity trait of this workspace (%s): add it with PATCH /v1/workspace {\"identity_traits\": [...]}, or map the column as a trait", t, joinList(ws.IdentityTraits))})
		}
	}
	if len(fieldErrs) > 0 {
		return bulkimport.Import{}, invalid("The mapping names an identifier this workspace does not have.", fieldErrs...)
	}

	// The header must have the mapped columns: say so now, not in a failed import.
	opts := bulkimport.Options{Format: format, FileHash: up.sha256, Namespace: up.source, ReceivedAt: receivedAt}
	if err := checkHeader(up.path, mapping, opts); err != nil {
		return bulkimport.Import{}, err
	}

	if up.name == "" {
		up.name = up.fileName
	}
	if up.name == "" {
		up.name = "upload " + receivedAt.Format(time.RFC3339)
	}
	im, err := s.importStore().Create(ctx, bulkimport.Import{
		WorkspaceID: workspaceID, Name: up.name, Format: format, Source: up.source, KeyID: keyID,
		FileSHA256: up.sha256, FileBytes: up.size, Mapping: up.mapping,
	})
	if err != nil {
		return im, err
	}
	opts.ImportID = im.ID
	origin := ingest.Origin{WorkspaceID: workspaceID, KeyID: keyID, Source: up.source}
	if err := s.startImport(context.WithoutCancel(ctx), im, mapping, opts, origin, up.path); err != nil {
		return im, err
	}
	up.path = "" // the background import removes it
	return im, nil
}

func mappingFieldErrors(me *bulkimport.MappingError) []FieldError {
	out := make([]FieldError, len(me.Errors))
	for i, f := range me.Errors {
		field := f.Field
		if field != "mapping" && field != "file" && field != "format" {
			field = "mapping." + field
		}
		out[i] = FieldError{Field: field, Reason: f.Reason}
	}
	return out
}

func checkHeader(path string, m *bulkimport.Mapping, opts bulkimport.Options) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	_, err = bulkimport.NewReader(f, m, opts)
	if me := (*bulkimport.MappingError)(nil); errors.As(err, &me) {
		return invalid("The mapping does not fit the file; nothing was imported.", mappingFieldErrors(me)...)
	}
	return err
}

// receiveUpload reads the request into a temp file: multipart/form-data with
// a file part and mapping, format, source and name fields, or the file as
// the raw body with those as query parameters. up.path is set as soon as a
// temp file exists, even on error, for the caller to remove.
func (s *Server) receiveUpload(c echo.Context) (upload, error) {
	r := c.Request()
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if mediaType != echo.MIMEMultipartForm {
		q := c.QueryParams()
		up := upload{format: q.Get("format"), source: q.Get("source"), name: q.Get("name"), mapping: []byte(q.Get("mapping"))}
		for p := range q {
			if !slices.Contains([]string{"format", "source", "name", "mapping"}, p) {
				return up, invalid("The request has a parameter this endpoint does not know.", FieldError{Field: p, Reason: "unknown parameter (check its spelling)"})
			}
		}
		switch ct := strings.ToLower(mediaType); {
		case up.format != "":
		case ct == "text/csv":
			up.format = "csv"
		case ct == "application/x-ndjson", ct == "application/jsonl", ct == "application/ndjson":
			up.format = "ndjson"
		}
		var body io.Reader = r.Body
		if strings.EqualFold(r.Header.Get(echo.HeaderContentEncoding), "gzip") {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				return up, problem(http.StatusBadRequest, "The body says it is gzip-compressed but is not: "+err.Error())
			}
			defer gz.Close()
			body = gz
		}
		err := s.saveFile(&up, body)
		return up, err
	}

	mr, err := r.MultipartReader()
	if err != nil {
		return upload{}, problem(http.StatusBadRequest, "The multipart body cannot be read: "+err.Error())
	}
	var up upload
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return up, problem(http.StatusBadRequest, "The multipart body cannot be read: "+err.Error())
		}
		field := part.FormName()
		if seen[field] {
			return up, invalid("A form field is given twice.", FieldError{Field: field, Reason: "appears more than once"})
		}
		seen[field] = true
		switch field {
		case "file":
			up.fileName = filepath.Base(part.FileName())
			if up.fileName == "." || up.fileName == "/" {
				up.fileName = ""
			}
			if err := s.saveFile(&up, part); err != nil {
				return up, err
			}
		case "mapping", "format", "source", "name":
			v, err := io.ReadAll(io.LimitReader(part, maxFormFieldBytes+1))
			if err != nil {
				return up, problem(http.StatusBadRequest, "The upload was interrupted: "+err.Error())
			}
			if len(v) > maxFormFieldBytes {
				return up, &Problem{Type: typeValidation, Title: "Invalid input", Status: http.StatusRequestEntityTooLarge,
					Detail: "A form field is too large.", Errors: []FieldError{{Field: field, Reason: fmt.Sprintf("may be at most %d KB", maxFormFieldBytes/1024)}}}
			}
			switch field {
			case "mapping":
				up.mapping = v
			case "format":
				up.format = strings.TrimSpace(string(v))
			case "source":
				up.source = strings.TrimSpace(string(v))
			case "name":
				up.name = strings.TrimSpace(string(v))
			}
		default:
			return up, invalid("The form has a field this endpoint does not know.", FieldError{Field: field, Reason: "unknown field (the fields are file, mapping, format, source and name)"})
		}
	}
	if !seen["file"] {
		return up, invalid("The import was refused; nothing was imported.", FieldError{Field: "file", Reason: "is missing: send the export as the form field file"})
	}
	return up, nil
}

// saveFile copies an uploaded file to a temp file, hashing it, up to
// MaxImportBytes.
func (s *Server) saveFile(up *upload, r io.Reader) error {
	f, err := os.CreateTemp("", "parcours-import-*")
	if err != nil {
		return fmt.Errorf("create temp file for upload: %w", err)
	}
	up.path = f.Name()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, MaxImportBytes+1))
	if cerr := f.Close(); err == nil && cerr != nil {
		return fmt.Errorf("write uploaded file: %w", cerr)
	}
	var pathErr *os.PathError
	switch {
	case errors.As(err, &pathErr): // the disk, not the client
		return fmt.Errorf("write uploaded file: %w", err)
	case err != nil:
		return problem(http.StatusBadRequest, "The upload was interrupted before the file was complete: "+err.Error())
	case n > MaxImportBytes:
		return &Problem{Type: typeValidation, Title: "File too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("The file is larger than %d MB, the most one import takes: split it into several files (importing a file twice is safe).", MaxImportBytes>>20),
			Errors: []FieldError{{Field: "file", Reason: fmt.Sprintf("is larger than %d MB", MaxImportBytes>>20)}}}
	}
	up.size, up.sha256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// startImport imports the file in the background, in a goroutine the
// server owns: ctx carries no deadline or cancellation of the request, only
// the server's own (see CloseImports).
func (s *Server) startImport(ctx context.Context, im bulkimport.Import, m *bulkimport.Mapping, opts bulkimport.Options, origin ingest.Origin, path string) error {
	j := &s.imports
	j.init()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return problem(http.StatusServiceUnavailable, "The server is shutting down; send the file again in a moment.")
	}
	ctx, cancel := context.WithCancel(ctx)
	j.cancels[im.ID] = cancel
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		defer func() {
			j.mu.Lock()
			delete(j.cancels, im.ID)
			j.mu.Unlock()
			cancel()
			_ = os.Remove(path)
		}()
		s.runImport(ctx, im, m, opts, origin, path)
	}()
	return nil
}

// CloseImports stops taking imports and waits for the running ones to
// finish. When ctx ends first, it cancels them: they are marked failed, and
// importing the same file again finishes the job (rows already imported
// count as duplicates).
func (s *Server) CloseImports(ctx context.Context) error {
	j := &s.imports
	j.init()
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	done := make(chan struct{})
	go func() {
		j.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	j.mu.Lock()
	for _, cancel := range j.cancels {
		cancel()
	}
	j.mu.Unlock()
	<-done
	return ctx.Err()
}

// runImport counts the file's rows, then ingests them in chunks, recording
// progress after each. Errors end the import as failed; they are recorded
// on it, not returned.
func (s *Server) runImport(ctx context.Context, im bulkimport.Import, m *bulkimport.Mapping, opts bulkimport.Options, origin ingest.Origin, path string) {
	store := s.importStore()
	log := s.logger.With("import_id", im.ID, "workspace_id", im.WorkspaceID)
	var p bulkimport.Progress
	err := func() error {
		select {
		case s.imports.slots <- struct{}{}:
			defer func() { <-s.imports.slots }()
		case <-ctx.Done():
			return fmt.Errorf("cancelled while waiting to start: %w", context.Cause(ctx))
		}
		total, err := countRows(path, m, opts)
		if err != nil {
			return err
		}
		if err := store.Start(ctx, im.WorkspaceID, im.ID, total); err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open uploaded file: %w", err)
		}
		defer f.Close()
		r, err := bulkimport.NewReader(f, m, opts)
		if err != nil {
			return err
		}
		for {
			chunk, err := r.ReadChunk(importChunkRows)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read row %d: %w", p.Processed+1, err)
			}
			rejects := make([]ingest.Rejection, len(chunk.Bad))
			for i, b := range chunk.Bad {
				rejects[i] = b.Rejection(opts.ReceivedAt)
			}
			res, err := s.Ingest.Ingest(ctx, origin, chunk.Messages, rejects)
			if err != nil {
				return fmt.Errorf("import rows %d to %d: %w", p.Processed+1, p.Processed+chunk.Rows(), err)
			}
			p.Add(chunk, res.Accepted, res.Duplicates)
			if err := store.SaveProgress(ctx, im.WorkspaceID, im.ID, p); err != nil {
				return err
			}
		}
	}()
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("the import was stopped (the server shut down) after %d rows; import the same file again to finish it: %w", p.Processed, err)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), importFinishTimeout)
	defer cancel()
	if ferr := store.Finish(fctx, im.WorkspaceID, im.ID, p, err); ferr != nil {
		log.Error("import finished but its state was not saved", "err", ferr, "import_err", err)
		return
	}
	if err != nil {
		log.Warn("import failed", "err", err, "processed", p.Processed)
		return
	}
	log.Info("import done", "rows", p.Processed, "accepted", p.Accepted, "duplicates", p.Duplicates, "rejected", p.Rejected)
}

func countRows(path string, m *bulkimport.Mapping, opts bulkimport.Options) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	n, err := bulkimport.CountRows(f, m, opts)
	if err != nil {
		return n, fmt.Errorf("count rows: %w", err)
	}
	return n, nil
}

func (s *Server) importStore() *bulkimport.Store { return bulkimport.NewStore(s.Pool) }

func (s *Server) getImport(c echo.Context) error {
	id := c.Param("id")
	if !isUUID(id) {
		return problem(http.StatusNotFound, "No import "+id+" in this workspace.")
	}
	im, err := s.importStore().Get(c.Request().Context(), keyFrom(c).WorkspaceID, id)
	if errors.Is(err, bulkimport.ErrNotFound) {
		return problem(http.StatusNotFound, "No import "+id+" in this workspace.")
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewImport(im))
}

func (s *Server) listImports(c echo.Context) error {
	limit, err := intParam(c, "limit", 50, 1, 500)
	if err != nil {
		return err
	}
	list, err := s.importStore().List(c.Request().Context(), keyFrom(c).WorkspaceID, limit)
	if err != nil {
		return err
	}
	out := make([]importView, len(list))
	for i, im := range list {
		out[i] = viewImport(im)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": out})
}

// isImportUpload tells the body limit middleware to let uploads through:
// createImport and the console's upload form enforce their own cap,
// MaxImportBytes.
func isImportUpload(c echo.Context) bool {
	return c.Request().Method == http.MethodPost && (c.Path() == "/v1/imports" || c.Path() == consoleImportPath)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
