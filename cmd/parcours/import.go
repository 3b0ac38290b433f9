package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parcours/parcours/api"
	"github.com/parcours/parcours/pkg/bulkimport"
)

const importUsage = `Usage: parcours import FILE --mapping mapping.json [flags]

Uploads a CSV or NDJSON export (at most 100 MB) to the API and follows the
import until it is done. Importing the same file again is safe.

Flags:
`

// runImport is `parcours import`: upload a file, then poll its import.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, importUsage)
		fs.PrintDefaults()
	}
	var (
		mappingPath = fs.String("mapping", "", "the mapping document (JSON file); required")
		source      = fs.String("source", "crm", "the source the records are stored under (crm, store, call_centre, ...)")
		format      = fs.String("format", "", "csv or ndjson (default: from the file name)")
		name        = fs.String("name", "", "a name for the import (default: the file name)")
		apiURL      = fs.String("api", "http://localhost:8080", "the Parcours API")
		key         = fs.String("key", getenv("PARCOURS_ADMIN_KEY"), "an admin API key (default $PARCOURS_ADMIN_KEY)")
	)
	// FILE may come before or after the flags.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(files) != 1:
		fs.Usage()
		return errors.New("give exactly one file to import")
	case *mappingPath == "":
		fs.Usage()
		return errors.New("--mapping is required: a JSON document saying which column is which (see README.md, Bulk import)")
	case *key == "":
		return errors.New("no API key: pass --key or set PARCOURS_ADMIN_KEY (parcours dev saves it in .parcours/credentials.env)")
	}
	mapping, err := os.ReadFile(*mappingPath)
	if err != nil {
		return fmt.Errorf("read mapping: %w", err)
	}
	c := &importClient{
		api: strings.TrimRight(*apiURL, "/"), key: *key,
		http:     &http.Client{Timeout: 10 * time.Minute}, // an upload of 100 MB on a slow link
		interval: 500 * time.Millisecond, stderr: stderr,
	}
	im, err := c.upload(ctx, files[0], mapping, map[string]string{"source": *source, "format": *format, "name": *name})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "uploaded %s: import %s\n", filepath.Base(files[0]), im.ID)
	im, err = c.wait(ctx, im.StatusURL)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "\nstopped following the import; it goes on on the server: GET %s%s\n", c.api, im.StatusURL)
		}
		return err
	}
	printImport(stdout, im)
	if im.Status == bulkimport.StatusFailed {
		return fmt.Errorf("import %s failed: %s", im.ID, im.Error)
	}
	return nil
}

// importStatus is an import as the API answers it.
type importStatus struct {
	bulkimport.Import
	StatusURL string `json:"status_url"`
}

// importClient uploads files to the API and follows their import.
type importClient struct {
	api, key string
	http     *http.Client
	// interval between two status polls.
	interval time.Duration
	// stderr receives the progress bar.
	stderr io.Writer
}

// upload streams the file as multipart/form-data (never whole in memory).
func (c *importClient) upload(ctx context.Context, path string, mapping []byte, fields map[string]string) (importStatus, error) {
	f, err := os.Open(path)
	if err != nil {
		return importStatus{}, fmt.Errorf("open file to import: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return importStatus{}, fmt.Errorf("open file to import: %w", err)
	}
	if st.Size() > api.MaxImportBytes {
		return importStatus{}, fmt.Errorf("%s is %d MB; an import takes at most %d MB: split the file (importing a file twice is safe)", path, st.Size()>>20, api.MaxImportBytes>>20)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if err := mw.WriteField("mapping", string(mapping)); err != nil {
				return err
			}
			for k, v := range fields {
				if v != "" {
					if err := mw.WriteField(k, v); err != nil {
						return err
					}
				}
			}
			fw, err := mw.CreateFormFile("file", filepath.Base(path))
			if err != nil {
				return err
			}
			if _, err := io.Copy(fw, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.api+"/v1/imports", pr)
	if err != nil {
		pr.Close()
		return importStatus{}, fmt.Errorf("upload: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	var im importStatus
	if err := c.do(req, http.StatusAccepted, &im); err != nil {
		pr.CloseWithError(err) // unblock the writer if the server answered early
		return im, fmt.Errorf("upload %s: %w", filepath.Base(path), err)
	}
	return im, nil
}

// wait polls the import until it is done or failed, drawing a progress bar
// on stderr. A few failed polls in a row (an API restarting) are tolerated.
func (c *importClient) wait(ctx context.Context, statusURL string) (importStatus, error) {
	const maxFailures = 5
	var (
		im       importStatus
		failures int
		lastLine string
	)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.api+statusURL, nil)
		if err != nil {
			return im, fmt.Errorf("poll import: %w", err)
		}
		var next importStatus
		err = c.do(req, http.StatusOK, &next)
		switch {
		case ctx.Err() != nil:
			im.StatusURL = statusURL
			return im, ctx.Err()
		case err != nil:
			var pe *problemError
			if failures++; failures >= maxFailures || errors.As(err, &pe) && pe.Status < 500 {
				return im, fmt.Errorf("poll import: %w", err)
			}
		default:
			failures, im = 0, next
			if line := progressLine(im); line != lastLine {
				// Pad to erase a longer previous line.
				fmt.Fprintf(c.stderr, "\r%-*s", len(lastLine), line)
				lastLine = line
			}
			if im.Status == bulkimport.StatusDone || im.Status == bulkimport.StatusFailed {
				fmt.Fprintln(c.stderr)
				return im, nil
			}
		}
		select {
		case <-ctx.Done():
			im.StatusURL = statusURL
			return im, ctx.Err()
		case <-time.After(c.interval):
		}
	}
}

// progressLine is one line of progress: a bar, the percentage, the counts.
func progressLine(im importStatus) string {
	const width = 30
	if im.Status == bulkimport.StatusPending {
		return "waiting for its turn..."
	}
	done := 0
	pct := 0
	if im.TotalRows > 0 {
		done = min(width, im.ProcessedRows*width/im.TotalRows)
		pct = min(100, im.ProcessedRows*100/im.TotalRows)
	} else if im.Status == bulkimport.StatusDone {
		done, pct = width, 100
	}
	return fmt.Sprintf("[%s%s] %3d%%  %d/%d rows  %d accepted  %d duplicates  %d rejected",
		strings.Repeat("#", done), strings.Repeat(".", width-done), pct,
		im.ProcessedRows, im.TotalRows, im.Accepted, im.Duplicates, im.Rejected)
}

// printImport prints the outcome and the first bad rows.
func printImport(w io.Writer, im importStatus) {
	fmt.Fprintf(w, "import %s %s: %d rows, %d accepted, %d duplicates, %d rejected\n",
		im.ID, im.Status, im.ProcessedRows, im.Accepted, im.Duplicates, im.Rejected)
	if len(im.BadRows) > 0 {
		fmt.Fprintf(w, "first bad rows (all %d are kept in quarantine: GET /v1/rejected):\n", im.Rejected)
		for _, b := range im.BadRows {
			where := fmt.Sprintf("line %d", b.Line)
			if b.Field != "" {
				where += ": " + b.Field
			}
			fmt.Fprintf(w, "  %s: %s\n", where, b.Reason)
		}
	}
	if im.Error != "" {
		fmt.Fprintf(w, "error: %s\n", im.Error)
	}
}

// problemError is an API error answer (application/problem+json).
type problemError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

func (p *problemError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", p.Status, p.Title, p.Detail)
	for _, e := range p.Errors {
		fmt.Fprintf(&b, "\n  %s: %s", e.Field, e.Reason)
	}
	return b.String()
}

// do sends req with the key and decodes a want answer into out; any other
// answer is a *problemError.
func (c *importClient) do(req *http.Request, want int, out any) error {
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != want {
		p := &problemError{}
		if json.Unmarshal(raw, p) != nil || p.Status == 0 {
			p = &problemError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(raw))}
		}
		return p
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
