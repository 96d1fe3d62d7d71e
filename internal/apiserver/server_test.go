package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/deploy"
)

// fakeManager answers by service name: "missing" is not found, "taken" exists, "bad" is invalid.
type fakeManager struct{ events []api.Event }

func (f *fakeManager) result(name string) (*api.Service, error) {
	switch name {
	case "missing":
		return nil, fmt.Errorf("%w: missing", deploy.ErrNotFound)
	case "taken":
		return nil, fmt.Errorf("%w: taken", deploy.ErrExists)
	case "bad":
		return nil, fmt.Errorf("%w: metadata.instance: must be between 0 and 100, got -1", deploy.ErrInvalid)
	case "busy":
		return nil, fmt.Errorf("%w: busy is Creating", deploy.ErrConflict)
	case "broken":
		return nil, fmt.Errorf("disk on fire")
	}
	return &api.Service{ServiceName: name, Status: api.StatusRunning}, nil
}

func (f *fakeManager) Create(_ context.Context, doc []byte) (*api.Service, error) {
	var s struct{ Name string }
	json.Unmarshal(doc, &s)
	return f.result(s.Name)
}
func (f *fakeManager) Modify(_ context.Context, n string, _ []byte) (*api.Service, error) {
	return f.result(n)
}
func (f *fakeManager) Start(_ context.Context, n string) (*api.Service, error)  { return f.result(n) }
func (f *fakeManager) Stop(_ context.Context, n string) (*api.Service, error)   { return f.result(n) }
func (f *fakeManager) Delete(_ context.Context, n string) (*api.Service, error) { return f.result(n) }
func (f *fakeManager) Describe(_ context.Context, n string) (*api.Service, error) {
	return f.result(n)
}
func (f *fakeManager) List(context.Context) ([]api.Service, error) {
	return []api.Service{{ServiceName: "a"}}, nil
}
func (f *fakeManager) Events(_ context.Context, n string, since int64) ([]api.Event, error) {
	if _, err := f.result(n); err != nil {
		return nil, err
	}
	return f.events, nil
}
func (f *fakeManager) Follow(_ context.Context, n string, since int64, fn func(api.Event) error) error {
	for _, e := range f.events {
		if e.ID > since {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func TestRoutesAndErrors(t *testing.T) {
	srv := httptest.NewServer(New(Options{Manager: &fakeManager{}, AdminToken: "admintoken", MaxBodyBytes: 64}))
	defer srv.Close()
	cases := []struct {
		method, path, body, token string
		status                    int
		code                      string
	}{
		{"GET", "/api/v2/services", "", "", 401, "Unauthorized"},
		{"GET", "/api/v2/services", "", "wrong", 401, "Unauthorized"},
		{"GET", "/api/v2/services", "", "admintoken", 200, ""},
		{"GET", "/api/v2/services/ok", "", "admintoken", 200, ""},
		{"GET", "/api/v2/services/missing", "", "admintoken", 404, "ServiceNotFound"},
		{"POST", "/api/v2/services", `{"name":"taken"}`, "admintoken", 409, "ServiceAlreadyExists"},
		{"POST", "/api/v2/services", `{"name":"bad"}`, "admintoken", 400, "InvalidParameter"},
		{"POST", "/api/v2/services", ``, "admintoken", 400, "InvalidParameter"},
		{"POST", "/api/v2/services", strings.Repeat(" ", 100), "admintoken", 400, "InvalidParameter"},
		{"PUT", "/api/v2/services/busy/start", "", "admintoken", 409, "InvalidState"},
		{"PUT", "/api/v2/services/broken/stop", "", "admintoken", 500, "InternalError"},
		{"DELETE", "/api/v2/services/ok", "", "admintoken", 200, ""},
		{"GET", "/api/v2/services/ok/events?since=x", "", "admintoken", 400, "InvalidParameter"},
		{"GET", "/api/v2/services/missing/events?follow=true", "", "admintoken", 404, "ServiceNotFound"},
		{"GET", "/api/v2/version", "", "admintoken", 200, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.Error
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.status || e.Code != c.code {
			t.Errorf("%s %s: %d %q, want %d %q (%s)", c.method, c.path, resp.StatusCode, e.Code, c.status, c.code, e.Message)
		}
		if c.status >= 400 && (e.Message == "" || strings.Contains(e.Message, "admintoken")) {
			t.Errorf("%s %s: error message %q: want a message that never shows the token", c.method, c.path, e.Message)
		}
	}
}

func TestFollowStreamsNDJSON(t *testing.T) {
	m := &fakeManager{events: []api.Event{{ID: 1, Message: "Service is now creating"}, {ID: 2, Message: "Service is running", Status: api.StatusRunning}}}
	srv := httptest.NewServer(New(Options{Manager: m, AdminToken: "t"}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v2/services/ok/events?follow=true&since=1", nil)
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("content type %q", ct)
	}
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e api.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Message)
	}
	if len(got) != 1 || got[0] != "Service is running" {
		t.Fatalf("streamed %v, want only the event after since=1", got)
	}
}
