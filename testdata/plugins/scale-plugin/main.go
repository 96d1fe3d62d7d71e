// Command scale-plugin is a test plugin for the OpenEAS plugin contract (docs/plugins.md).
//
// It copies the input model to the output, writes runtime.json ({"intra_op_threads": N}, N from
// config "intra_op_threads", default 1) and plugin-applied.json (the input tree digest it saw,
// the contract environment, its whole environment, the parsed config file and its arguments), and a JSON report.
// Config keys that make it misbehave, for tests:
//
//	"fail": "message"   write progress lines and the message to stderr, exit 3
//	"empty": true       exit 0 without writing any output
//	"bad_report": true  write a report that is not JSON
//	"sleep": "60s"      start a child process, write "<pid> <child pid>" to "pid_file", sleep, then
//	                    finish as a normal run
//	"touch_input": true write a file into the (read-only) input, then succeed
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/openeas/openeas/internal/modelsource"
)

type configFile struct {
	Config struct {
		Fail           string `json:"fail"`
		Empty          bool   `json:"empty"`
		BadReport      bool   `json:"bad_report"`
		Sleep          string `json:"sleep"`
		PIDFile        string `json:"pid_file"`
		IntraOpThreads int    `json:"intra_op_threads"`
		TouchInput     bool   `json:"touch_input"`
	} `json:"config"`
	Processor string          `json:"processor"`
	Metadata  json.RawMessage `json:"metadata"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child-sleep" {
		d, _ := time.ParseDuration(os.Args[2])
		time.Sleep(d)
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "scale-plugin:", err)
		os.Exit(1)
	}
}

func run() error {
	env := map[string]string{}
	for _, k := range []string{"EAS_PLUGIN_INPUT", "EAS_PLUGIN_OUTPUT", "EAS_PLUGIN_CONFIG", "EAS_PLUGIN_REPORT", "EAS_PLUGIN_DEVICE"} {
		env[k] = os.Getenv(k)
		if env[k] == "" {
			return fmt.Errorf("%s is not set", k)
		}
	}
	raw, err := os.ReadFile(env["EAS_PLUGIN_CONFIG"])
	if err != nil {
		return err
	}
	var cfg configFile
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	c := cfg.Config
	fmt.Println("scale-plugin: starting") // stdout, which the runner only logs

	switch {
	case c.Fail != "":
		for i := 1; i <= 30; i++ {
			fmt.Fprintf(os.Stderr, "progress %d\n", i)
		}
		fmt.Fprintln(os.Stderr, c.Fail)
		os.Exit(3)
	case c.Empty:
		return nil
	case c.Sleep != "":
		d, err := time.ParseDuration(c.Sleep)
		if err != nil {
			return err
		}
		child := exec.Command(os.Args[0], "child-sleep", c.Sleep)
		if err := child.Start(); err != nil {
			return err
		}
		pids := strconv.Itoa(os.Getpid()) + " " + strconv.Itoa(child.Process.Pid)
		if err := os.WriteFile(c.PIDFile, []byte(pids), 0o644); err != nil {
			return err
		}
		time.Sleep(d) // then succeed like a normal run: a slow plugin, not a broken one
	}

	in, out := env["EAS_PLUGIN_INPUT"], env["EAS_PLUGIN_OUTPUT"]
	digest, err := modelsource.TreeDigest(in)
	if err != nil {
		return err
	}
	if err := modelsource.CopyTree(context.Background(), in, out); err != nil {
		return err
	}
	threads := c.IntraOpThreads
	if threads == 0 {
		threads = 1
	}
	if err := writeJSON(out+"/runtime.json", map[string]int{"intra_op_threads": threads}); err != nil {
		return err
	}
	applied := map[string]any{
		"input_digest": digest,
		"env":          env,
		"environ":      os.Environ(),
		"config":       json.RawMessage(raw),
		"args":         os.Args[1:],
	}
	if err := writeJSON(out+"/plugin-applied.json", applied); err != nil {
		return err
	}
	if c.TouchInput {
		if err := os.WriteFile(in+"/touched", []byte("x"), 0o644); err != nil {
			return err
		}
	}
	if c.BadReport {
		return os.WriteFile(env["EAS_PLUGIN_REPORT"], []byte("not json"), 0o644)
	}
	files, _ := modelsource.ListFiles(out)
	return writeJSON(env["EAS_PLUGIN_REPORT"], map[string]any{"plugin": "scale-plugin", "input_digest": digest, "files": len(files)})
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
