// Command fakeworker speaks the eas-worker process contract for the scheduler's tests.
// Its behaviour comes from DIR/fake.json in the --bundle directory, read at each start:
//
//	{"fail": "msg"}          print a failed event with msg and exit 1 (after listening)
//	{"exit": N}              exit N after listening, without an event
//	{"stderr": ["l1", ...]}  print these lines on stderr first
//	{"crash_after": "1s"}    exit 2 that long after becoming ready
//	{"no_listen": true}      print ready without listening first (a protocol error)
//
// HTTP: GET /healthz, GET /ready, POST /predict echoes "<tag>:<body>" where tag is fake.json's
// "tag"; ?hold=DURATION sends the headers at once, waits, then the body; POST /crash exits 3.
// SIGTERM drains in-flight requests (http.Server.Shutdown) and exits 0.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

type config struct {
	Tag        string   `json:"tag"`
	Fail       string   `json:"fail"`
	Exit       int      `json:"exit"`
	Stderr     []string `json:"stderr"`
	CrashAfter string   `json:"crash_after"`
	NoListen   bool     `json:"no_listen"`
}

func main() {
	bundle := flag.String("bundle", "", "bundle dir")
	name := flag.String("name", "", "service")
	listen := flag.String("listen", "127.0.0.1:0", "address")
	note := flag.String("note", "", "printed on stderr")
	flag.Parse()

	var cfg config
	if b, err := os.ReadFile(filepath.Join(*bundle, "fake.json")); err == nil {
		if err := json.Unmarshal(b, &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "fake.json:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "fakeworker %s starting, env FAKE_ENV=%s note=%s\n", *name, os.Getenv("FAKE_ENV"), *note)
	for _, l := range cfg.Stderr {
		fmt.Fprintln(os.Stderr, l)
	}
	if cfg.NoListen {
		fmt.Println(`{"event":"ready","load_ms":1}`)
		time.Sleep(time.Hour)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Printf("{\"event\":\"failed\",\"error\":%q}\n", err.Error())
		os.Exit(1)
	}
	fmt.Printf("{\"event\":\"listening\",\"addr\":%q}\n", ln.Addr().String())
	if cfg.Exit != 0 {
		os.Exit(cfg.Exit)
	}
	if cfg.Fail != "" {
		fmt.Printf("{\"event\":\"failed\",\"error\":%q}\n", cfg.Fail)
		os.Exit(1)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) { os.Exit(3) })
	mux.HandleFunc("POST /predict", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if hold, err := time.ParseDuration(r.URL.Query().Get("hold")); err == nil {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			time.Sleep(hold)
		}
		fmt.Fprintf(w, "%s:%s", cfg.Tag, body)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	fmt.Println(`{"event":"ready","load_ms":1}`)
	if d, err := time.ParseDuration(cfg.CrashAfter); err == nil {
		time.AfterFunc(d, func() { os.Exit(2) })
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Fprintln(os.Stderr, "fakeworker draining")
	_ = srv.Shutdown(context.Background())
	os.Exit(0)
}
