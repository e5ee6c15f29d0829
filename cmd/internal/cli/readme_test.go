package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryFlag keeps README.md's flag tables from drifting
// away from the binaries: every flag a binary's -h lists must be named in
// README. It builds the binaries and reads their -h, so a flag added
// anywhere (cli.Dynamo, a main, an outboxctl command) is caught.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries: %v", err)
	}
	root := moduleRoot(t, goBin)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command(goBin, "build", "-o", bin+string(filepath.Separator),
		"./cmd/relay", "./cmd/booking", "./cmd/analytics-sink", "./cmd/demo", "./cmd/outboxctl")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	helps := [][]string{
		{"relay", "-h"}, {"booking", "-h"}, {"analytics-sink", "-h"}, {"demo", "-h"}, {"outboxctl", "-h"},
	}
	for _, cmd := range []string{"init", "status", "failed", "redrive", "replay", "tail"} {
		helps = append(helps, []string{"outboxctl", cmd, "-h"})
	}
	flagLine := regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`)
	for _, h := range helps {
		t.Run(strings.Join(h, " "), func(t *testing.T) {
			// -h exits 0 and prints the usage on stderr.
			out, err := exec.Command(filepath.Join(bin, h[0]), h[1:]...).CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", h, err, out)
			}
			flags := flagLine.FindAllStringSubmatch(string(out), -1)
			if len(flags) == 0 {
				t.Fatalf("no flags found in the -h output:\n%s", out)
			}
			for _, f := range flags {
				// Named as in the README's tables and command lines: `-name`
				// or a -name inside a command's code span, not a prefix of a
				// longer flag.
				named := regexp.MustCompile("[`\\s\\[(]-" + regexp.QuoteMeta(f[1]) + "[^a-z0-9-]")
				if !named.Match(readme) {
					t.Errorf("README.md does not document -%s (from %v)", f[1], h)
				}
			}
		})
	}
}

func moduleRoot(t *testing.T, goBin string) string {
	t.Helper()
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
