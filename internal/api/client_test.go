package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorded is what the fake server saw.
type recorded struct {
	method, path, rawQuery, auth, contentType, body string
}

func newFake(t *testing.T, status int, answer string) (*Client, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return NewClient(srv.URL+"/", "admintok", nil), rec
}

func TestClientRoutes(t *testing.T) {
	svc := `{"ServiceName":"m1","Status":"Running","RunningInstance":2,"TotalInstance":2,"AccessToken":"tk"}`
	ctx := context.Background()
	tests := []struct {
		name                string
		call                func(c *Client) (any, error)
		answer              string
		method, path, query string
		body                string
		want                string // JSON of the result
	}{
		{"create", func(c *Client) (any, error) { return c.Create(ctx, []byte(`{"name":"m1"}`)) }, svc,
			"POST", "/api/v2/services", "", `{"name":"m1"}`, svc},
		{"list", func(c *Client) (any, error) { return c.List(ctx) }, `{"Services":[` + svc + `]}`,
			"GET", "/api/v2/services", "", "", "[" + svc + "]"},
		{"describe", func(c *Client) (any, error) { return c.Describe(ctx, "m1") }, svc,
			"GET", "/api/v2/services/m1", "", "", svc},
		{"describe escapes", func(c *Client) (any, error) { return c.Describe(ctx, "a/b c") }, svc,
			"GET", "/api/v2/services/a%2Fb%20c", "", "", svc},
		{"modify", func(c *Client) (any, error) { return c.Modify(ctx, "m1", []byte(`{"metadata":{"instance":3}}`)) }, svc,
			"PUT", "/api/v2/services/m1", "", `{"metadata":{"instance":3}}`, svc},
		{"start", func(c *Client) (any, error) { return c.Start(ctx, "m1") }, svc,
			"PUT", "/api/v2/services/m1/start", "", "", svc},
		{"stop", func(c *Client) (any, error) { return c.Stop(ctx, "m1") }, svc,
			"PUT", "/api/v2/services/m1/stop", "", "", svc},
		{"delete", func(c *Client) (any, error) { return c.Delete(ctx, "m1") }, svc,
			"DELETE", "/api/v2/services/m1", "", "", svc},
		{"events", func(c *Client) (any, error) { return c.Events(ctx, "m1", 7) },
			`{"Events":[{"ID":8,"Time":"2024-01-02T03:04:05Z","Type":"Normal","Message":"Service is now creating"}]}`,
			"GET", "/api/v2/services/m1/events", "since=7", "",
			`[{"ID":8,"Time":"2024-01-02T03:04:05Z","Type":"Normal","Message":"Service is now creating"}]`},
		{"version", func(c *Client) (any, error) { return c.ServerVersion(ctx) },
			`{"Version":"0.1.0","StartedTime":"2024-01-02T03:04:05Z"}`,
			"GET", "/api/v2/version", "", "", `{"Version":"0.1.0","StartedTime":"2024-01-02T03:04:05Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newFake(t, 200, tt.answer)
			got, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if rec.method != tt.method || rec.path != tt.path || rec.rawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", rec.method, rec.path, rec.rawQuery, tt.method, tt.path, tt.query)
			}
			if rec.auth != "Bearer admintok" {
				t.Errorf("Authorization = %q", rec.auth)
			}
			if rec.body != tt.body {
				t.Errorf("body = %q, want %q", rec.body, tt.body)
			}
			if tt.body != "" && rec.contentType != "application/json" {
				t.Errorf("Content-Type = %q", rec.contentType)
			}
			assertSameJSON(t, got, tt.want)
		})
	}
}

func assertSameJSON(t *testing.T, got any, want string) {
	t.Helper()
	// Round-trip want through the same type so zero-valued fields compare equal.
	gb, _ := json.Marshal(got)
	var wantV any
	switch got.(type) {
	case *Service:
		wantV = new(Service)
	case []Service:
		wantV = new([]Service)
	case []Event:
		wantV = new([]Event)
	case *Version:
		wantV = new(Version)
	default:
		t.Fatalf("unexpected type %T", got)
	}
	if err := json.Unmarshal([]byte(want), wantV); err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(wantV)
	if string(gb) != string(wb) {
		t.Errorf("result = %s\nwant     %s", gb, wb)
	}
}

func TestClientStatusError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		answer  string
		want    StatusError
		wantErr string
	}{
		{"error body", 404, `{"Code":"ServiceNotFound","Message":"service m1 not found","RequestId":"r-1"}`,
			StatusError{404, "ServiceNotFound", "service m1 not found", "r-1"},
			"describe service m1: service m1 not found (HTTP 404 ServiceNotFound)"},
		{"plain text body", 502, "bad gateway\n",
			StatusError{StatusCode: 502, Message: "bad gateway"},
			"describe service m1: bad gateway (HTTP 502)"},
		{"empty body", 500, "",
			StatusError{StatusCode: 500},
			"describe service m1: Internal Server Error (HTTP 500)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFake(t, tt.status, tt.answer)
			_, err := c.Describe(context.Background(), "m1")
			var se *StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *StatusError", err)
			}
			if *se != tt.want {
				t.Errorf("StatusError = %+v, want %+v", *se, tt.want)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantErr)
			}
			if IsNotFound(err) != (tt.status == 404) {
				t.Errorf("IsNotFound = %v", IsNotFound(err))
			}
		})
	}
}

func TestFollowEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "true" || r.URL.Query().Get("since") != "3" {
			http.Error(w, `{"Code":"BadQuery","Message":"bad query"}`, 400)
			return
		}
		for i := 4; i <= 6; i++ {
			fmt.Fprintf(w, `{"ID":%d,"Type":"Normal","Message":"step %d","Status":"Creating"}`+"\n", i, i)
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "t", nil)

	var got []string
	err := c.FollowEvents(context.Background(), "m1", 3, func(e Event) error {
		got = append(got, fmt.Sprintf("%d:%s", e.ID, e.Message))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "4:step 4,5:step 5,6:step 6" {
		t.Errorf("events = %v", got)
	}

	stop := errors.New("stop here")
	n := 0
	err = c.FollowEvents(context.Background(), "m1", 3, func(e Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err = %v after %d events, want the callback's error after 1", err, n)
	}

	err = c.FollowEvents(context.Background(), "m1", 0, func(Event) error { return nil })
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || se.Code != "BadQuery" {
		t.Errorf("err = %v, want StatusError 400 BadQuery", err)
	}
}

func TestFollowEventsCancel(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ID":1,"Message":"first"}`+"\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	err := NewClient(srv.URL, "t", nil).FollowEvents(ctx, "m1", 0, func(e Event) error {
		cancel() // the stream stays open; only the context can end the call
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestNewClientBareHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"Version":"x"}`)
	}))
	defer srv.Close()
	v, err := NewClient(strings.TrimPrefix(srv.URL, "http://"), "", nil).ServerVersion(context.Background())
	if err != nil || v.Version != "x" {
		t.Fatalf("ServerVersion = %v, %v", v, err)
	}
}
