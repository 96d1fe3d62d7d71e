package main

import (
	"slices"
	"strings"
	"testing"
)

func TestWithoutSecrets(t *testing.T) {
	env := []string{"PATH=/bin", "OSS_ACCESS_KEY_SECRET=s", "AWS_SECRET_ACCESS_KEY=s", "ALIBABA_CLOUD_ACCESS_KEY_ID=k", "OPENEAS_ORT_LIB=/x", "EAS_OSS_ENDPOINT=e"}
	got := withoutSecrets(env)
	want := []string{"PATH=/bin", "OPENEAS_ORT_LIB=/x", "EAS_OSS_ENDPOINT=e"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"512", 512, true}, {"64KiB", 64 << 10, true}, {"20GiB", 20 << 30, true},
		{"20G", 20 << 30, true}, {"3MB", 3 << 20, true}, {"1TiB", 1 << 40, true}, {"2gib", 2 << 30, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5GiB", 0, false}, {"10PiB", 0, false}, {"GiB", 0, false},
		{"99999999999TiB", 0, false},
	} {
		var b byteSize
		err := b.Set(tc.in)
		if (err == nil) != tc.ok || (tc.ok && int64(b) != tc.want) {
			t.Errorf("Set(%q) = %d, %v; want %d ok=%v", tc.in, b, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "20GiB") {
			t.Errorf("Set(%q) error %q does not say what is expected", tc.in, err)
		}
	}
}
