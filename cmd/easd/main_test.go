package main

import (
	"slices"
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
