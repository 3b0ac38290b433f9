package segment

import (
	"testing"
	"time"
)

func TestRetryDelayDoublesUpToItsCap(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		failures int
		want     time.Duration
	}{
		{1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {9, 2560 * time.Second},
		{10, time.Hour}, {64, time.Hour}, {1000, time.Hour}, // a receiver down for weeks: still hourly
	} {
		if got := retryDelay(10*time.Second, time.Hour, tt.failures); got != tt.want {
			t.Errorf("after %d failures: %s, want %s", tt.failures, got, tt.want)
		}
	}
}
