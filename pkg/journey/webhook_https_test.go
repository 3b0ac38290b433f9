package journey_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/journey"
)

// A webhook node posts the profile: plain http to a public host is refused
// when the journey is saved, not only when it sends.
func TestWebhookNodeNeedsHTTPS(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/abandoned_cart.json")
	if err != nil {
		t.Fatal(err)
	}
	d, err := journey.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	d.Nodes[1] = journey.Node{ID: "rescue_1", Type: "webhook", URL: "http://crm.example.com/hooks/parcours", Next: "wait_day"}
	var ve *journey.ValidationError
	if err := journey.Validate(d); !errors.As(err, &ve) || len(ve.Errors) != 1 || ve.Errors[0].Field != "nodes[rescue_1].url" || !strings.Contains(ve.Errors[0].Reason, "https") {
		t.Fatalf("plain http: %v", err)
	}
	d.Nodes[1].URL = "https://crm.example.com/hooks/parcours"
	if err := journey.Validate(d); err != nil {
		t.Fatalf("https: %v", err)
	}
}
