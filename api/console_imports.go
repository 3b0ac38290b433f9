package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/parcours/parcours/pkg/bulkimport"
	"github.com/parcours/parcours/pkg/user"
)

const (
	// consoleImportPath is where the console's upload form posts.
	consoleImportPath = "/data/imports"
	// consoleKeyID stands for the API key of records imported from the
	// console: no key sent them (a person did), so the audit trail records
	// the nil id, as for the events Parcours records itself, with the
	// import's source.
	consoleKeyID = "00000000-0000-0000-0000-000000000000"
	// uploadOverhead is what a multipart form adds to the file: the
	// boundaries and the other fields.
	uploadOverhead = 1 << 20
	// uploadMemory is how much of an upload is held in memory; the rest
	// waits in a temp file.
	uploadMemory = 8 << 20
	// importRefreshSeconds is how often a running import's page updates.
	importRefreshSeconds = 2
)

// limitUpload caps the console's upload at MaxImportBytes and, for a
// signed-in browser, reads the form before the page wrapper does, so that
// a file too large is answered as such rather than as a form without its
// CSRF token.
func (s *Server) limitUpload(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		tooLarge := func() error {
			sess, _ := s.sessionOf(c)
			return s.consoleError(c, sess, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("The file is larger than %d MB, the most one import takes: split it into several files (importing a file twice is safe).", MaxImportBytes>>20))
		}
		if _, err := s.sessionOf(c); err != nil {
			return h(c) // refused by the page wrapper before the body is read
		}
		if r.ContentLength > MaxImportBytes+uploadOverhead {
			return tooLarge()
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, MaxImportBytes+uploadOverhead)
		var maxErr *http.MaxBytesError
		if err := r.ParseMultipartForm(uploadMemory); errors.As(err, &maxErr) {
			return tooLarge()
		}
		// Other errors (not multipart, cut short) leave fields missing: the
		// handler says which.
		return h(c)
	}
}

// importForm is the upload form: its values and what is wrong.
type importForm struct {
	Name, Event, Format, Mapping string
	Source                       sourcePicker
	FieldErrors                  map[string]string
	// MappingErrors list what is wrong with the mapping, column by column.
	MappingErrors []string
	Error         string
}

// importRow is an import as the console shows it.
type importRow struct {
	bulkimport.Import
	SourceLabel, StatusLabel string
	// Size is the file's size for people: 117 KB, 2.4 MB.
	Size string
	// Running: pending or running, the page keeps updating.
	Running bool
	// Percent of the rows processed (0 until the rows are counted).
	Percent int
}

var importStatusLabels = map[bulkimport.Status]string{
	bulkimport.StatusPending: "Waiting to start",
	bulkimport.StatusRunning: "Importing",
	bulkimport.StatusDone:    "Done",
	bulkimport.StatusFailed:  "Failed",
}

func newImportRow(im bulkimport.Import) importRow {
	r := importRow{Import: im, SourceLabel: sourceLabel(im.Source), StatusLabel: importStatusLabels[im.Status], Size: fileSize(im.FileBytes),
		Running: im.Status == bulkimport.StatusPending || im.Status == bulkimport.StatusRunning}
	if im.TotalRows > 0 {
		r.Percent = im.ProcessedRows * 100 / im.TotalRows
	}
	if im.Status == bulkimport.StatusDone {
		r.Percent = 100
	}
	return r
}

// fileSize writes a number of bytes for people.
func fileSize(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10) + " bytes"
	case n < 1000*1000:
		return strconv.FormatInt((n+500)/1000, 10) + " KB"
	}
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
}

type importsData struct {
	Imports    []importRow
	AnyRunning bool
	CanImport  bool
	Form       importForm
	MaxMB      int
	Refresh    int
}

func (s *Server) importsPage(c echo.Context, sess user.Session) error {
	return s.renderImports(c, sess, http.StatusOK, importForm{Source: newSourcePicker("source", "crm", "")})
}

func (s *Server) renderImports(c echo.Context, sess user.Session, status int, form importForm) error {
	list, err := s.importStore().List(c.Request().Context(), sess.User.WorkspaceID, 50)
	if err != nil {
		return err
	}
	d := importsData{CanImport: sess.User.Role.Allows(user.RoleMarketer), Form: form, MaxMB: MaxImportBytes >> 20, Refresh: importRefreshSeconds}
	for _, im := range list {
		r := newImportRow(im)
		d.AnyRunning = d.AnyRunning || r.Running
		d.Imports = append(d.Imports, r)
	}
	return s.renderData(c, sess, status, "data_imports.html", "Imports", "/data/imports", d)
}

// createImportForm starts an import of the uploaded file. Without a
// mapping, it proposes one from the file's header (bulkimport.GuessMapping);
// the import's page shows how each column was read. The records carry the
// chosen source; the import runs in the background and its page follows it.
func (s *Server) createImportForm(c echo.Context, sess user.Session) error {
	receivedAt := time.Now().UTC()
	ctx := c.Request().Context()
	source := formSource(c, "source")
	form := importForm{
		Name: strings.TrimSpace(c.FormValue("name")), Event: strings.TrimSpace(c.FormValue("event")),
		Format: c.FormValue("format"), Mapping: strings.TrimSpace(crlf.Replace(c.FormValue("mapping"))),
		Source: newSourcePicker("source", source, ""),
	}
	refuse := func(fields map[string]string, mappingErrs ...string) error {
		form.FieldErrors, form.MappingErrors = fields, mappingErrs
		form.Error = "Nothing was imported: fix what is marked below, then choose the file again."
		if msg, ok := fields["source"]; ok {
			form.Source.Error = msg
		}
		return s.renderImports(c, sess, http.StatusUnprocessableEntity, form)
	}

	fh, err := c.FormFile("file")
	if err != nil {
		return refuse(map[string]string{"file": "Choose the file to import: a CSV export with a header row, or NDJSON (one JSON object per line)."})
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	up := upload{fileName: filepath.Base(fh.Filename), name: form.Name, format: form.Format, source: source, mapping: []byte(form.Mapping)}
	if up.fileName == "." || up.fileName == "/" {
		up.fileName = ""
	}
	err = s.saveFile(&up, f)
	defer func() {
		if up.path != "" { // not handed over to the background import
			_ = os.Remove(up.path)
		}
	}()
	if err != nil {
		return err
	}
	if source == "" {
		return refuse(map[string]string{"source": "Choose where the data comes from, or name the source."})
	}

	if form.Mapping == "" {
		m, err := s.guessMapping(c, sess.User.WorkspaceID, &up, form.Event)
		var me *bulkimport.MappingError
		if errors.As(err, &me) {
			fields, rest := importFieldErrors(mappingFieldErrors(me))
			return refuse(fields, rest...)
		}
		if err != nil {
			return err
		}
		up.mapping = m
	}
	im, err := s.beginImport(ctx, sess.User.WorkspaceID, consoleKeyID, &up, receivedAt)
	var p *Problem
	if errors.As(err, &p) && len(p.Errors) > 0 {
		form.Mapping = string(up.mapping) // the proposed mapping, to correct
		fields, rest := importFieldErrors(p.Errors)
		return refuse(fields, rest...)
	}
	if err != nil {
		return err
	}
	s.logger.InfoContext(ctx, "import started in the console", "import_id", im.ID, "user_id", sess.User.ID)
	return c.Redirect(http.StatusSeeOther, consoleImportPath+"/"+url.PathEscape(im.ID))
}

// guessMapping proposes a mapping from the uploaded file's header and the
// workspace's identifiers.
func (s *Server) guessMapping(c echo.Context, workspaceID string, up *upload, event string) ([]byte, error) {
	format, ok := bulkimport.ParseFormat(up.format)
	if up.format == "" {
		format, ok = bulkimport.FormatFromName(up.fileName)
	}
	if !ok {
		return nil, &bulkimport.MappingError{Errors: []bulkimport.FieldError{{Field: "format",
			Reason: "The file's name does not say whether it is CSV or NDJSON: choose the format."}}}
	}
	ws, err := s.Workspaces.Get(c.Request().Context(), workspaceID)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(up.path)
	if err != nil {
		return nil, fmt.Errorf("open uploaded file: %w", err)
	}
	defer f.Close()
	h, err := bulkimport.ReadHeader(f, format)
	if err != nil {
		return nil, err
	}
	traits := ws.IdentityTraits
	if ws.UniqueIdentifier != "user_id" && !slices.Contains(traits, ws.UniqueIdentifier) {
		traits = append(slices.Clone(traits), ws.UniqueIdentifier)
	}
	m, err := bulkimport.GuessMapping(h, traits, event)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode mapping: %w", err)
	}
	return b, nil
}

// importFieldErrors sorts an import's field errors into the form's fields
// and, for the mapping, a list of sentences.
func importFieldErrors(errs []FieldError) (fields map[string]string, mapping []string) {
	fields = map[string]string{}
	for _, fe := range errs {
		switch fe.Field {
		case "file", "format", "source", "name":
			fields[fe.Field] = upperFirst(fe.Reason)
		default:
			where := strings.TrimPrefix(strings.TrimPrefix(fe.Field, "mapping"), ".")
			if where == "" {
				mapping = append(mapping, upperFirst(fe.Reason))
			} else {
				mapping = append(mapping, where+": "+fe.Reason)
			}
		}
	}
	if len(mapping) > 0 {
		fields["mapping"] = "The columns could not be read this way; see the list."
	}
	return fields, mapping
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// columnUse says in words what one column of a file fills.
type columnUse struct{ Column, Fills string }

// importDetail is an import's page.
type importDetail struct {
	Import importRow
	// Rows says what each row became; Columns what each column filled.
	Rows    string
	Columns []columnUse
	Refresh int
}

func (s *Server) importPage(c echo.Context, sess user.Session) error {
	id := c.Param("id")
	notFound := problem(http.StatusNotFound, "There is no such import in this workspace.")
	if !isUUID(id) {
		return notFound
	}
	im, err := s.importStore().Get(c.Request().Context(), sess.User.WorkspaceID, id)
	if errors.Is(err, bulkimport.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	d := importDetail{Import: newImportRow(im), Refresh: importRefreshSeconds}
	d.Rows, d.Columns = describeMapping(im.Mapping)
	return s.renderData(c, sess, http.StatusOK, "data_import.html", im.Name, "/data/imports", d)
}

// describeMapping says in words what a stored mapping does.
func describeMapping(doc []byte) (string, []columnUse) {
	var m bulkimport.Mapping
	if err := json.Unmarshal(doc, &m); err != nil {
		return "", nil
	}
	rows := "Each row is a person: their identifiers and traits (an identify record)."
	if e := m.Event; e != nil {
		if e.Name != "" {
			rows = fmt.Sprintf("Each row is a “%s” event.", e.Name)
		} else {
			rows = fmt.Sprintf("Each row is the event named in the column “%s”.", e.NameColumn)
		}
	}
	var cols []columnUse
	names := make([]string, 0, len(m.Columns))
	for n := range m.Columns {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		col := m.Columns[n]
		var fills []string
		if col.Identifier != "" {
			fills = append(fills, "identifies the person ("+humanLabel(identifierName(col.Identifier))+")")
		}
		if col.Trait != "" {
			fills = append(fills, "trait "+col.Trait)
		}
		if col.Property != "" {
			fills = append(fills, "property "+col.Property)
		}
		use := strings.Join(fills, ", ")
		if col.Type != "" {
			use += " (read as " + col.Type + ")"
		}
		cols = append(cols, columnUse{Column: n, Fills: use})
	}
	if m.TimestampColumn != "" {
		cols = append(cols, columnUse{Column: m.TimestampColumn, Fills: "when it happened"})
	}
	if m.IDColumn != "" {
		cols = append(cols, columnUse{Column: m.IDColumn, Fills: "the row's own id (the same id in another file is the same record)"})
	}
	return rows, cols
}

// identifierName spells a mapping's identifier as humanLabel knows it.
func identifierName(id string) string {
	switch id {
	case "userId":
		return "user_id"
	case "anonymousId":
		return "anonymous_id"
	}
	return id
}
