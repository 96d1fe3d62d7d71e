package torchinstall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	write := func(dir, name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	cpu := t.TempDir()
	write(cpu, ShimFile, "elf")
	write(cpu, InfoFile, `{"libtorch":"1.13.1","cuda":false}`)
	cuda := t.TempDir()
	write(cuda, ShimFile, "elf")
	write(cuda, InfoFile, `{"libtorch":"2.11.0","cuda":true}`)
	noInfo := t.TempDir()
	write(noInfo, ShimFile, "elf")
	tests := []struct {
		dir  string
		gpu  bool
		want string // "" = ok
	}{
		{empty, false, "apt-get install libtorch-dev libopenblas0-pthread"},
		{cpu, false, ""},
		{cpu, true, "CPU-only libtorch 1.13.1"},
		{cuda, true, ""},
		{cuda, false, ""},
		{noInfo, false, "no description"},
	}
	for _, tc := range tests {
		err := Check(tc.dir, tc.gpu)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%s, gpu=%v) = %v, want %q", tc.dir, tc.gpu, err, tc.want)
		}
	}
}
