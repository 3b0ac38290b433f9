package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parcours/parcours/pkg/config"
)

func TestProviderURLAllow(t *testing.T) {
	t.Parallel()
	c, err := config.Load(func(string) string { return "" })
	if err != nil || !slices.Equal(c.ProviderURLAllow, []string{"api.sendgrid.com", "api.eu.sendgrid.com", "api.twilio.com", "*.twilio.com"}) {
		t.Fatalf("default %v %v", c.ProviderURLAllow, err)
	}
	env := map[string]string{"PARCOURS_PROVIDER_URL_ALLOW": " API.sendgrid.com, 127.0.0.1:8025 ,*.example.com,"}
	if c, err = config.Load(func(k string) string { return env[k] }); err != nil || !slices.Equal(c.ProviderURLAllow, []string{"api.sendgrid.com", "127.0.0.1:8025", "*.example.com"}) {
		t.Fatalf("set %v %v", c.ProviderURLAllow, err)
	}
	env["PARCOURS_PROVIDER_URL_ALLOW"] = "https://api.sendgrid.com/"
	if _, err = config.Load(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "PARCOURS_PROVIDER_URL_ALLOW") {
		t.Fatalf("a URL accepted as a host: %v", err)
	}
}
