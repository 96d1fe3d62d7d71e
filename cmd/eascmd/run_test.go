package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openeas/openeas/internal/api"
)

// fakeServer answers the control-plane routes with canned values and records requests.
type fakeServer struct {
	t        *testing.T
	mu       sync.Mutex
	services map[string]api.Service
	events   []api.Event // what a follow streams (IDs > since)
	lastID   int64       // LastEventID in mutation answers
	// chunks, when set, are what successive follows stream (a stream cut short), and
	// statuses what successive describes say, before falling back to events and after.
	chunks   [][]api.Event
	statuses []string
	// onCreate / onModify decide the service after the call (status, message).
	after    api.Service
	deleted  map[string]bool // their events still stream, as while the server tears them down
	requests []string        // "METHOD PATH?QUERY body"
	auth     []string
}

func newFakeServer(t *testing.T) (*fakeServer, *httptest.Server) {
	f := &fakeServer{t: t, services: map[string]api.Service{}, deleted: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	if len(body) > 0 {
		line += " " + string(body)
	}
	f.requests = append(f.requests, line)
	f.auth = append(f.auth, r.Header.Get("Authorization"))

	answer := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	notFound := func(name string) {
		w.WriteHeader(404)
		answer(api.Error{Code: "ServiceNotFound", Message: "service " + name + " not found", RequestID: "req-1"})
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v2/")
	parts := strings.Split(path, "/")
	switch {
	case path == "version":
		answer(api.Version{Version: "0.3.0", ORTVersion: "1.22.0", StartedTime: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)})
	case path == "services" && r.Method == "POST":
		var spec struct{ Name string }
		json.Unmarshal(body, &spec)
		s := api.Service{ServiceName: spec.Name, Status: api.StatusCreating,
			InternetEndpoint: "http://127.0.0.1:8080/api/predict/" + spec.Name,
			IntranetEndpoint: "http://127.0.0.1:8080/api/predict/" + spec.Name,
			AccessToken:      "tok-" + spec.Name}
		f.services[spec.Name] = f.final(s)
		answer(s)
	case path == "services":
		l := api.ServiceList{Services: []api.Service{}}
		for _, name := range []string{"alpha", "beta"} {
			if s, ok := f.services[name]; ok {
				l.Services = append(l.Services, s)
			}
		}
		answer(l)
	case len(parts) >= 2 && parts[0] == "services":
		name := parts[1]
		s, ok := f.services[name]
		isEvents := len(parts) == 3 && parts[2] == "events"
		if !ok && !(isEvents && f.deleted[name]) {
			notFound(name)
			return
		}
		switch {
		case isEvents:
			if r.URL.Query().Get("follow") != "true" {
				answer(api.EventList{Events: f.events})
				return
			}
			var since int64
			fmt.Sscan(r.URL.Query().Get("since"), &since)
			evs := f.events
			if len(f.chunks) > 0 {
				evs, f.chunks = f.chunks[0], f.chunks[1:]
			}
			for _, e := range evs {
				if e.ID > since {
					json.NewEncoder(w).Encode(e) // one JSON object per line
				}
			}
		case r.Method == "GET":
			if len(f.statuses) > 0 {
				s.Status, f.statuses = f.statuses[0], f.statuses[1:]
			}
			answer(s)
		case r.Method == "DELETE":
			delete(f.services, name)
			f.deleted[name] = true
			s.Status = api.StatusDeleting
			s.LastEventID = f.lastID
			answer(s)
		default: // PUT modify/start/stop
			f.services[name] = f.final(s)
			s.LastEventID = f.lastID
			answer(s)
		}
	default:
		w.WriteHeader(404)
		answer(api.Error{Code: "NoRoute", Message: "no route"})
	}
}

// final is the service after its follow stream ends.
func (f *fakeServer) final(s api.Service) api.Service {
	s.Status, s.Message = f.after.Status, f.after.Message
	return s
}

// run runs eascmd with a config pointing at srv and returns stdout, stderr and the error.
func run(t *testing.T, srv *httptest.Server, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	if srv != nil {
		if err := saveConfig(cfgPath, config{Endpoint: srv.URL, Token: "admintok"}); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	err := Run(context.Background(), Options{
		Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		ConfigPath: cfgPath, Location: time.UTC, Version: "1.2.3", ReconnectDelay: time.Millisecond,
	})
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var createEvents = []api.Event{
	{ID: 1, Type: "Normal", Message: "Service is now creating"},
	{ID: 2, Type: "Normal", Message: "Executing plugin eas-plugin-73d70d54: registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest"},
	{ID: 3, Type: "Warning", Message: "Plugin cache miss, optimizing"},
	{ID: 4, Type: "Normal", Message: "Running [Total: 1, Pending: 0, Running: 1]"},
	{ID: 5, Type: "Normal", Message: "Service is running", Status: "Running"},
}

func TestCreate(t *testing.T) {
	f, srv := newFakeServer(t)
	f.events = createEvents
	f.after = api.Service{Status: api.StatusRunning}
	file := writeFile(t, "service.json", `{"name":"blade_eas_plugin_test","processor":"onnx_cpu"}`)

	out, _, err := run(t, srv, "", "create", file)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	want := `+-------------------+---------------------------------------------------------+
| Internet Endpoint | http://127.0.0.1:8080/api/predict/blade_eas_plugin_test |
| Intranet Endpoint | http://127.0.0.1:8080/api/predict/blade_eas_plugin_test |
| Token             | tok-blade_eas_plugin_test                               |
+-------------------+---------------------------------------------------------+
[OK] Service is now creating
[OK] Executing plugin eas-plugin-73d70d54: registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest
[WARN] Plugin cache miss, optimizing
[OK] Running [Total: 1, Pending: 0, Running: 1]
[OK] Service is running
`
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	wantReqs := []string{
		`POST /api/v2/services {"name":"blade_eas_plugin_test","processor":"onnx_cpu"}`,
		`GET /api/v2/services/blade_eas_plugin_test/events?follow=true&since=0`,
		`GET /api/v2/services/blade_eas_plugin_test`,
	}
	if strings.Join(f.requests, "\n") != strings.Join(wantReqs, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(f.requests, "\n"), strings.Join(wantReqs, "\n"))
	}
	for _, a := range f.auth {
		if a != "Bearer admintok" {
			t.Errorf("Authorization = %q", a)
		}
	}
}

func TestCreateReconnects(t *testing.T) {
	f, srv := newFakeServer(t)
	f.events = createEvents
	f.chunks = [][]api.Event{createEvents[:2], createEvents} // first stream cut after event 2
	f.statuses = []string{api.StatusCreating}                // so the service is still creating
	f.after = api.Service{Status: api.StatusRunning}
	file := writeFile(t, "service.json", `{"name":"m1"}`)
	out, _, err := run(t, srv, "", "create", file)
	if err != nil {
		t.Fatal(err)
	}
	_, events, _ := strings.Cut(out, "+\n[")
	want := "OK] Service is now creating\n[OK] Executing plugin eas-plugin-73d70d54: registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:cpu_latest\n" +
		"[WARN] Plugin cache miss, optimizing\n[OK] Running [Total: 1, Pending: 0, Running: 1]\n[OK] Service is running\n"
	if events != want {
		t.Errorf("events shown:\n[%s\nwant (each once):\n[%s", events, want)
	}
	if got := f.requests[3]; got != "GET /api/v2/services/m1/events?follow=true&since=2" {
		t.Errorf("reconnect = %q, want it to resume after event 2", got)
	}
}

func TestCreateFailed(t *testing.T) {
	f, srv := newFakeServer(t)
	f.events = []api.Event{
		{ID: 1, Type: "Normal", Message: "Service is now creating"},
		{ID: 2, Type: "Warning", Message: "plugin eas-plugin-73d70d54 failed: exit status 1", Status: "Failed"},
	}
	f.after = api.Service{Status: api.StatusFailed, Message: "plugin eas-plugin-73d70d54 failed: model.onnx: not an ONNX model"}
	file := writeFile(t, "service.json", `{"name":"m1"}`)

	out, _, err := run(t, srv, "", "create", file)
	var rep *reportedError
	if !errors.As(err, &rep) {
		t.Fatalf("err = %v, want a reported failure", err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	tail := strings.Join(lines[len(lines)-3:], "\n")
	wantTail := "[OK] Service is now creating\n" +
		"[WARN] plugin eas-plugin-73d70d54 failed: exit status 1\n" +
		"[FAILED] plugin eas-plugin-73d70d54 failed: model.onnx: not an ONNX model"
	if tail != wantTail {
		t.Errorf("output ends:\n%s\nwant:\n%s", tail, wantTail)
	}
}

func TestCreateErrors(t *testing.T) {
	_, srv := newFakeServer(t)
	_, _, err := run(t, srv, "", "create", filepath.Join(t.TempDir(), "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "read service file") || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v", err)
	}
	_, _, err = run(t, srv, "", "create")
	var ue *usageError
	if !errors.As(err, &ue) || err.Error() != "eascmd create takes one argument, got 0 (see eascmd create --help)" {
		t.Errorf("no file: err = %v", err)
	}
}

func TestModifyPatch(t *testing.T) {
	specFile := writeFile(t, "patch.json", `{"metadata":{"cpu":4}}`)
	tests := []struct {
		name    string
		args    []string
		want    string // the PUT body
		wantErr string
	}{
		{"attached -D integer", []string{"-Dmetadata.instance=3"}, `{"metadata":{"instance":3}}`, ""},
		{"separate -D and bool", []string{"-D", "metadata.rpc.batching=true"}, `{"metadata":{"rpc":{"batching":true}}}`, ""},
		{"string field stays string", []string{"-Dmetadata.cuda=11.8"}, `{"metadata":{"cuda":"11.8"}}`, ""},
		{"several keys nest together", []string{"-Dmetadata.instance=2", "-Dmetadata.rpc.keepalive=20000"},
			`{"metadata":{"instance":2,"rpc":{"keepalive":20000}}}`, ""},
		{"file then overrides", []string{"-s", specFile, "-Dmetadata.instance=2"}, `{"metadata":{"cpu":4,"instance":2}}`, ""},
		{"flags before the name", []string{"-Dmetadata.instance=5"}, `{"metadata":{"instance":5}}`, ""},
		{"array index patches the current config", []string{"-Dplugins[0].gpu=1"},
			`{"name":"m1","plugins":[{"command":"blade","image":"img","gpu":1}]}`, ""},
		{"bad integer", []string{"-Dmetadata.instance=three"}, "", `override metadata.instance: expected integer, got "three"`},
		{"no value", []string{"-Dmetadata.instance"}, "", `override "metadata.instance": expected key=value`},
		{"nothing to change", nil, "", "eascmd modify: nothing to change: give -s FILE and/or -Dkey=value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFakeServer(t)
			f.services["m1"] = api.Service{ServiceName: "m1", Status: api.StatusRunning,
				ServiceConfig: json.RawMessage(`{"name":"m1","plugins":[{"command":"blade","image":"img"}]}`)}
			f.after = api.Service{Status: api.StatusRunning}
			f.lastID = 10
			f.events = []api.Event{{ID: 10, Message: "old"}, {ID: 11, Message: "Service is updating"}, {ID: 12, Message: "Service is running"}}
			args := append([]string{"modify", "m1"}, tt.args...)
			if tt.name == "flags before the name" {
				args = append([]string{"modify"}, append(tt.args, "m1")...)
			}
			out, _, err := run(t, srv, "", args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var put string
			for _, r := range f.requests {
				if b, ok := strings.CutPrefix(r, "PUT /api/v2/services/m1 "); ok {
					put = b
				}
			}
			if put != tt.want {
				t.Errorf("PUT body = %s, want %s", put, tt.want)
			}
			// Only the events after the answer's LastEventID are shown.
			if out != "[OK] Service is updating\n[OK] Service is running\n" {
				t.Errorf("output = %q", out)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	f, srv := newFakeServer(t)
	cfgPath := filepath.Join(t.TempDir(), "sub", "config.json")
	var out bytes.Buffer
	err := Run(context.Background(), Options{Args: []string{"--config", cfgPath, "config", "-e", srv.URL, "-k", "s3cret"}, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "[OK] Configuration saved to "+cfgPath+"\n" {
		t.Errorf("output = %q", out.String())
	}
	st, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %v, want 0600", st.Mode().Perm())
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil || cfg != (config{Endpoint: srv.URL, Token: "s3cret"}) {
		t.Errorf("saved config = %+v, %v", cfg, err)
	}

	// The saved settings are used; the environment overrides the token.
	for _, tc := range []struct{ envToken, wantAuth string }{{"", "Bearer s3cret"}, {"fromenv", "Bearer fromenv"}} {
		f.auth = nil
		err = Run(context.Background(), Options{Args: []string{"list", "--config", cfgPath}, EnvToken: tc.envToken, Stdout: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.auth) != 1 || f.auth[0] != tc.wantAuth {
			t.Errorf("env token %q: Authorization = %v, want %q", tc.envToken, f.auth, tc.wantAuth)
		}
	}

	// A config that is not what we wrote names the file.
	bad := writeFile(t, "bad.json", `{"endpoint": 3}`)
	err = Run(context.Background(), Options{Args: []string{"list"}, ConfigPath: bad})
	if err == nil || !strings.Contains(err.Error(), "config file "+bad) {
		t.Errorf("bad config: err = %v", err)
	}
	// Nothing configured at all.
	err = Run(context.Background(), Options{Args: []string{"list"}, ConfigPath: filepath.Join(t.TempDir(), "none.json")})
	if err == nil || !strings.Contains(err.Error(), "no server endpoint") {
		t.Errorf("no config: err = %v", err)
	}
}

func TestReadCommands(t *testing.T) {
	f, srv := newFakeServer(t)
	upd := time.Date(2024, 5, 1, 9, 30, 0, 0, time.UTC)
	f.services["alpha"] = api.Service{ServiceName: "alpha", Status: "Running", RunningInstance: 2, TotalInstance: 3,
		Image: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", UpdateTime: upd,
		AccessToken: "tk", InternetEndpoint: "http://h/api/predict/alpha", IntranetEndpoint: "http://h/api/predict/alpha",
		Processor: "onnx_cpu", Version: 2, CreateTime: upd, Message: "ok <&>"}
	f.services["beta"] = api.Service{ServiceName: "beta", Status: "Failed", TotalInstance: 1}
	f.events = []api.Event{
		{ID: 1, Time: upd, Type: "Normal", Message: "Service is now creating"},
		{ID: 2, Time: upd.Add(time.Minute), Type: "Warning", Message: "instance 1 exited"},
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"list"}, `+-------------+---------+-----------+---------------------+---------------------+
| ServiceName | Status  | Instances | Image               | UpdateTime          |
+-------------+---------+-----------+---------------------+---------------------+
| alpha       | Running | 2/3       | sha256:0123456789ab | 2024-05-01 09:30:00 |
| beta        | Failed  | 0/1       |                     |                     |
+-------------+---------+-----------+---------------------+---------------------+
`},
		{[]string{"desc", "alpha", "-o", "json"}, `{
  "ServiceName": "alpha",
  "Status": "Running",
  "RunningInstance": 2,
  "TotalInstance": 3,
  "InternetEndpoint": "http://h/api/predict/alpha",
  "IntranetEndpoint": "http://h/api/predict/alpha",
  "AccessToken": "tk",
  "Image": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "Message": "ok <&>"
}
`},
		{[]string{"desc", "beta"}, `+------------------+--------+
| ServiceName      | beta   |
| Status           | Failed |
| Message          |        |
| RunningInstance  | 0      |
| TotalInstance    | 1      |
| InternetEndpoint |        |
| IntranetEndpoint |        |
| AccessToken      |        |
| Image            |        |
| Processor        |        |
| ServedBy         |        |
| Version          | 0      |
| CreateTime       |        |
| UpdateTime       |        |
+------------------+--------+
`},
		{[]string{"events", "alpha"}, `+---------------------+---------+-------------------------+
| Time                | Type    | Message                 |
+---------------------+---------+-------------------------+
| 2024-05-01 09:30:00 | Normal  | Service is now creating |
| 2024-05-01 09:31:00 | Warning | instance 1 exited       |
+---------------------+---------+-------------------------+
`},
		{[]string{"version"}, "Client Version: 1.2.3\nServer Version: 0.3.0\nOnnxRuntime Version: 1.22.0\nStarted: 2024-05-01 08:00:00\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, _, err := run(t, srv, "", tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if out != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out, tt.want)
			}
		})
	}

	_, _, err := run(t, srv, "", "desc", "nope")
	if err == nil || err.Error() != "describe service nope: service nope not found (HTTP 404 ServiceNotFound)" {
		t.Errorf("desc nope: err = %v", err)
	}
}

func TestStartStopDelete(t *testing.T) {
	f, srv := newFakeServer(t)
	f.services["m1"] = api.Service{ServiceName: "m1", Status: api.StatusRunning}
	f.events = []api.Event{{ID: 1, Message: "Service is stopping"}, {ID: 2, Message: "Service stopped"}}

	f.after = api.Service{Status: api.StatusStopped}
	out, _, err := run(t, srv, "", "stop", "m1")
	if err != nil || out != "[OK] Service is stopping\n[OK] Service stopped\n" {
		t.Errorf("stop: %q, %v", out, err)
	}
	// start that ends Stopped is a failure.
	f.after = api.Service{Status: api.StatusStopped, Message: "no resources"}
	out, _, err = run(t, srv, "", "start", "m1")
	if err == nil || !strings.HasSuffix(out, "[FAILED] no resources\n") {
		t.Errorf("start ending Stopped: %q, %v", out, err)
	}

	// delete asks; anything but y keeps the service.
	f.requests = nil
	out, _, err = run(t, srv, "n\n", "delete", "m1")
	if err != nil || !strings.HasPrefix(out, "Are you sure to delete the service [m1]? [y/N] ") || len(f.requests) != 0 {
		t.Errorf("delete answered n: %q, %v, requests %v", out, err, f.requests)
	}
	f.events = []api.Event{{ID: 1, Message: "Service is deleting"}}
	out, _, err = run(t, srv, "y\n", "delete", "m1")
	if err != nil || out != "Are you sure to delete the service [m1]? [y/N] [OK] Service is deleting\n" {
		t.Errorf("delete answered y: %q, %v", out, err)
	}
	if _, ok := f.services["m1"]; ok {
		t.Error("service not deleted")
	}
	// -y skips the question; a service already gone is an error from the server.
	out, _, err = run(t, srv, "", "delete", "-y", "m1")
	if !api.IsNotFound(err) || out != "" {
		t.Errorf("delete -y of a missing service: %q, %v", out, err)
	}
}

func TestHelpAndUsage(t *testing.T) {
	out, errOut, err := run(t, nil, "", "--help")
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: err = %v", err)
	}
	for _, want := range []string{"create", "modify", "events", "version", "EAS_ENDPOINT", "EAS_ADMIN_TOKEN"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("top-level help lacks %q:\n%s", want, errOut)
		}
	}
	_ = out
	for _, cmd := range []string{"config", "create", "list", "desc", "modify", "start", "stop", "delete", "events", "version"} {
		_, errOut, err := run(t, nil, "", cmd, "--help")
		if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(errOut, "Usage: eascmd "+cmd) || !strings.Contains(errOut, "EAS_ADMIN_TOKEN") {
			t.Errorf("%s --help: err = %v, output:\n%s", cmd, err, errOut)
		}
	}
	_, _, err = run(t, nil, "", "frobnicate")
	var ue *usageError
	if !errors.As(err, &ue) || err.Error() != `unknown command "frobnicate" (see eascmd --help)` {
		t.Errorf("unknown command: err = %v", err)
	}
	_, _, err = run(t, nil, "", "desc", "a", "b")
	if !errors.As(err, &ue) {
		t.Errorf("two names: err = %v", err)
	}
	_, _, err = run(t, nil, "", "desc", "a", "-o", "yaml")
	if !errors.As(err, &ue) {
		t.Errorf("-o yaml: err = %v", err)
	}
}

func TestReadServiceFileResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ in, want string }{
		{`{"name":"a","model_path":"./model/"}`, filepath.Join(dir, "model") + "/"},
		{`{"name":"a","model_path":"m.onnx"}`, filepath.Join(dir, "m.onnx")},
		{`{"name":"a","model_path":"/abs/m.onnx"}`, "/abs/m.onnx"},
		{`{"name":"a","model_path":"http://h/m.onnx"}`, "http://h/m.onnx"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "service.json")
		if err := os.WriteFile(p, []byte(c.in), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := readServiceFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			ModelPath string `json:"model_path"`
		}
		if err := json.Unmarshal(b, &doc); err != nil || doc.ModelPath != c.want {
			t.Errorf("%s: model_path %q (%v), want %q", c.in, doc.ModelPath, err, c.want)
		}
	}
	// Not JSON: passed through for easd to explain.
	p := filepath.Join(dir, "bad.json")
	os.WriteFile(p, []byte("{nope"), 0o644)
	if b, err := readServiceFile(p); err != nil || string(b) != "{nope" {
		t.Errorf("bad JSON: %q %v", b, err)
	}
}
