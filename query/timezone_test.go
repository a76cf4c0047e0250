package query

import "testing"

// TestTimeZoneIsUTC: hour(), date casts and date_trunc on TIMESTAMPTZ columns
// agree with the UTC dt=/hour= partitions even when the server's local zone
// is not UTC.
func TestTimeZoneIsUTC(t *testing.T) {
	t.Setenv("TZ", "America/New_York")
	e, _, _ := newTestEngine(t, Config{})
	if got := scalar(t, e, "select current_setting('TimeZone')"); got != "UTC" {
		t.Fatalf("TimeZone = %v, want UTC", got)
	}
	if got := scalar(t, e, "select hour(TIMESTAMPTZ '2026-11-22 03:00:00+00')"); got != float64(3) && got != int64(3) {
		t.Fatalf("hour() = %v (%T), want 3", got, got)
	}
}
