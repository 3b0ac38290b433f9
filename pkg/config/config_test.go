package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parcours/parcours/pkg/config"
)

func TestDefaultsNeedNoEnvironment(t *testing.T) {
	t.Parallel()
	c, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.DatabaseURL != "postgres://localhost:5432/parcours" || c.HTTPAddr != ":8080" ||
		c.TemporalPort != 7233 || c.TemporalUIPort != 8233 || c.TaskQueue != "parcours" ||
		c.TemporalNamespace != "default" || c.RequestTimeout != 30*time.Second || c.TemporalAddress != "" ||
		c.TrustProxy || c.SessionIdleTimeout != 30*time.Minute || c.PasswordHashConcurrency != 4 {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestInvalidValuesAreAllReported(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"PARCOURS_TEMPORAL_PORT":             "seventy",
		"PARCOURS_REQUEST_TIMEOUT":           "soon",
		"LOG_LEVEL":                          "loud",
		"PARCOURS_TRUST_PROXY":               "sometimes",
		"PARCOURS_SESSION_IDLE_TIMEOUT":      "0",
		"PARCOURS_PASSWORD_HASH_CONCURRENCY": "1000",
	}
	_, err := config.Load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for name := range env {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// Operators behind a proxy say so; the settings are read as given.
func TestProxyAndSignInSettings(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PARCOURS_TRUST_PROXY": "true", "PARCOURS_SESSION_IDLE_TIMEOUT": "2h", "PARCOURS_PASSWORD_HASH_CONCURRENCY": "2"}
	c, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !c.TrustProxy || c.SessionIdleTimeout != 2*time.Hour || c.PasswordHashConcurrency != 2 {
		t.Fatalf("config %+v", c)
	}
}

// The README's configuration table must list every variable with its default.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars {
		row := "| `" + v.Name + "` | " + v.Default + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}

func TestIngestionLimitsDefaultAndTurnOff(t *testing.T) {
	t.Parallel()
	c, err := config.Load(func(string) string { return "" })
	if err != nil || c.WriteKeyRate != 1000 || c.WriteKeyBurst != 5000 || c.ProfileEventRate != 600 {
		t.Fatalf("defaults: %d/s burst %d, %d a minute a person (%v)", c.WriteKeyRate, c.WriteKeyBurst, c.ProfileEventRate, err)
	}
	off := map[string]string{"PARCOURS_WRITE_KEY_RATE": "0", "PARCOURS_PROFILE_EVENT_RATE": "0"}
	if c, err = config.Load(func(k string) string { return off[k] }); err != nil || c.WriteKeyRate != 0 || c.ProfileEventRate != 0 {
		t.Fatalf("0 turns them off: %+v %v", c, err)
	}
	bad := map[string]string{"PARCOURS_WRITE_KEY_RATE": "fast", "PARCOURS_WRITE_KEY_BURST": "-1", "PARCOURS_PROFILE_EVENT_RATE": "1e3"}
	_, err = config.Load(func(k string) string { return bad[k] })
	for name := range bad {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q not reported: %v", name, bad[name], err)
		}
	}
}

func TestRetentionSettings(t *testing.T) {
	t.Parallel()
	c, err := config.Load(func(string) string { return "" })
	if err != nil || c.QuarantineRetention != 30*24*time.Hour || c.ProviderEventRetention != 90*24*time.Hour {
		t.Fatalf("defaults: quarantine %s, provider events %s (%v)", c.QuarantineRetention, c.ProviderEventRetention, err)
	}
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"36h", 36 * time.Hour, true},
		{"0", 0, true},
		{"30m", 0, false},
		{"0d", 0, false},
		{"-3d", 0, false},
		{"a month", 0, false},
	}
	for _, tt := range tests {
		env := map[string]string{"PARCOURS_QUARANTINE_RETENTION": tt.in, "PARCOURS_PROVIDER_EVENT_RETENTION": tt.in}
		c, err := config.Load(func(k string) string { return env[k] })
		switch {
		case tt.ok && (err != nil || c.QuarantineRetention != tt.want || c.ProviderEventRetention != tt.want):
			t.Errorf("%q: %s %s %v, want %s", tt.in, c.QuarantineRetention, c.ProviderEventRetention, err, tt.want)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), "PARCOURS_QUARANTINE_RETENTION") || !strings.Contains(err.Error(), "PARCOURS_PROVIDER_EVENT_RETENTION")):
			t.Errorf("%q accepted or not reported: %v", tt.in, err)
		}
	}
}
