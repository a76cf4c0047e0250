package testproc

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestKeepLog: the whole output is kept in a file under $SLUICE_TEST_LOGS,
// and the notice names it with the last lines and the last error before them.
func TestKeepLog(t *testing.T) {
	t.Setenv("SLUICE_TEST_LOGS", t.TempDir())
	out := "level=INFO msg=a\nlevel=ERROR msg=boom\nl3\nl4\nl5\nl6\n"
	notice := KeepLog("TestX/sub", "sluice serve 127.0.0.1:1", []byte(out))
	path := regexp.MustCompile(`kept in (\S+),`).FindStringSubmatch(notice)
	if path == nil {
		t.Fatalf("notice names no file: %q", notice)
	}
	data, err := os.ReadFile(path[1])
	if err != nil || string(data) != out {
		t.Fatalf("kept file: %q, %v; want the whole output", data, err)
	}
	if !strings.HasSuffix(notice, "level=ERROR msg=boom\n...\nl4\nl5\nl6") || strings.Contains(notice, "msg=a") {
		t.Fatalf("notice %q: want the last error, then the last three lines", notice)
	}
}
