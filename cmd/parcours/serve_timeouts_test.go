package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/parcours/parcours/api"
)

// The API's server bounds the whole request, not only its headers: a body
// trickled a byte a minute no longer holds a connection for ever (the cut
// itself is exercised in api's TestSlowBodiesAreCutButImportsMayTakeLonger).
// A request timeout set longer than ReadTimeout keeps its requests readable.
func TestAPIServerTimeouts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		requestTimeout, want time.Duration
	}{
		{30 * time.Second, api.ReadTimeout},
		{5 * time.Minute, 5 * time.Minute},
	} {
		srv := newHTTPServer(http.NotFoundHandler(), tt.requestTimeout)
		if srv.ReadTimeout != tt.want || srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > srv.ReadTimeout || srv.IdleTimeout <= 0 {
			t.Errorf("request timeout %s: ReadHeaderTimeout %s, ReadTimeout %s (want %s), IdleTimeout %s",
				tt.requestTimeout, srv.ReadHeaderTimeout, srv.ReadTimeout, tt.want, srv.IdleTimeout)
		}
	}
	// 100 MB at 60 KB/s: a marketer's upload on a poor line still arrives.
	if perSecond := float64(api.MaxImportBytes) / api.ImportReadTimeout.Seconds(); perSecond > 64<<10 {
		t.Errorf("an import must arrive at %.0f KB/s within ImportReadTimeout %s", perSecond/1024, api.ImportReadTimeout)
	}
}
