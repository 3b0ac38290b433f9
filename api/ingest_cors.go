package api

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// browserIngestPaths are the Segment endpoints analytics.js calls from the
// pages of a customer's website, another origin than this server's.
var browserIngestPaths = map[string]bool{
	"/v1/identify": true, "/v1/track": true, "/v1/page": true, "/v1/screen": true,
	"/v1/group": true, "/v1/alias": true, "/v1/batch": true,
}

// ingestCORS lets web pages of any origin send records to the ingestion
// endpoints, as they do to Segment's: without it a browser still delivers
// analytics.js's requests but hides the answers, so the library takes
// every call for a failure and sends it again. Only these endpoints answer
// cross-origin; they need a write key, which is made to sit in web pages,
// and no cookie is involved. Management endpoints and the console stay
// same-origin.
func (s *Server) ingestCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if browserIngestPaths[c.Path()] {
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", "*")
			if c.Request().Method == http.MethodOptions { // a preflight
				h.Set("Access-Control-Allow-Methods", "POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding")
				h.Set("Access-Control-Max-Age", "86400")
			}
		}
		return next(c)
	}
}
