package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/spec"
)

const timeLayout = "2006-01-02 15:04:05"

func runCreate(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("create")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	data, err := readServiceFile(pos[0])
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	svc, err := c.client.Create(ctx, data)
	if err != nil {
		return err
	}
	writeTable(c.opts.Stdout, nil, [][]string{
		{"Internet Endpoint", svc.InternetEndpoint},
		{"Intranet Endpoint", svc.IntranetEndpoint},
		{"Token", svc.AccessToken},
	})
	// A new service's whole history is what this call caused, so follow from the start.
	return c.follow(ctx, svc.ServiceName, 0, api.StatusRunning)
}

func runModify(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("modify")
	file := fs.String("s", "", "service.json `file` with the fields to change")
	var defines stringList
	fs.Var(&defines, "D", "`key=value` override, e.g. -Dmetadata.instance=3 (repeatable)")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *file == "" && len(defines) == 0 {
		return usagef("eascmd modify: nothing to change: give -s FILE and/or -Dkey=value")
	}
	name := pos[0]
	if err := c.connect(); err != nil {
		return err
	}
	var base []byte
	if needsCurrentConfig(defines) {
		// An array index can only be set inside the current array: the server's merge
		// replaces arrays whole, so patch a full copy of the current service.json.
		cur, err := c.client.Describe(ctx, name)
		if err != nil {
			return err
		}
		if len(cur.ServiceConfig) > 0 {
			base = cur.ServiceConfig
		}
	}
	patch, err := buildPatch(base, *file, defines)
	if err != nil {
		return err
	}
	svc, err := c.client.Modify(ctx, name, patch)
	if err != nil {
		return err
	}
	return c.follow(ctx, name, svc.LastEventID, api.StatusRunning)
}

// needsCurrentConfig reports whether an override key indexes an array.
func needsCurrentConfig(defines []string) bool {
	for _, d := range defines {
		key, _, _ := strings.Cut(d, "=")
		if strings.Contains(key, "[") {
			return true
		}
		for _, seg := range strings.Split(key, ".") {
			if _, err := strconv.Atoi(seg); err == nil {
				return true
			}
		}
	}
	return false
}

// buildPatch makes modify's JSON patch: base (the current service.json, or nothing),
// merged with the -s file, then the -D overrides, typed by the service.json schema.
func buildPatch(base []byte, file string, defines []string) ([]byte, error) {
	doc := []byte("{}")
	if base != nil {
		doc = base
	}
	if file != "" {
		data, err := readServiceFile(file)
		if err != nil {
			return nil, err
		}
		doc, err = spec.MergePatch(doc, data)
		if err != nil {
			return nil, fmt.Errorf("service file %s: %w", file, err)
		}
	}
	if len(defines) > 0 {
		var err error
		if doc, err = spec.ApplyOverrides(doc, defines); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runStart(ctx context.Context, c *cli, args []string) error {
	return c.lifecycle(ctx, "start", args, (*api.Client).Start, api.StatusRunning)
}

func runStop(ctx context.Context, c *cli, args []string) error {
	return c.lifecycle(ctx, "stop", args, (*api.Client).Stop, api.StatusStopped)
}

func (c *cli) lifecycle(ctx context.Context, name string, args []string,
	call func(*api.Client, context.Context, string) (*api.Service, error), want string) error {
	fs := c.flags(name)
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	svc, err := call(c.client, ctx, pos[0])
	if err != nil {
		return err
	}
	return c.follow(ctx, pos[0], svc.LastEventID, want)
}

func runDelete(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("delete")
	yes := fs.Bool("y", false, "do not ask for confirmation")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if !*yes {
		fmt.Fprintf(c.opts.Stdout, "Are you sure to delete the service [%s]? [y/N] ", name)
		line, _ := bufio.NewReader(c.opts.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(c.opts.Stdout, "\n[CANCELLED] Service not deleted")
			return nil
		}
	}
	if err := c.connect(); err != nil {
		return err
	}
	svc, err := c.client.Delete(ctx, name)
	if err != nil {
		return err
	}
	err = c.client.FollowEvents(ctx, name, svc.LastEventID, c.printEvent)
	if err != nil && !api.IsNotFound(err) { // already gone: that is success
		return err
	}
	return nil
}

// follow prints the service's events from since until the server ends the stream, then
// checks that the service reached want. Failure prints "[FAILED] <Message>".
func (c *cli) follow(ctx context.Context, name string, since int64, want string) error {
	var svc *api.Service
	for {
		err := c.client.FollowEvents(ctx, name, since, func(e api.Event) error {
			since = max(since, e.ID)
			return c.printEvent(e)
		})
		if err == nil {
			svc, err = c.client.Describe(ctx, name)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped following %s; the operation goes on (see 'eascmd events %s'): %w", name, name, ctx.Err())
		}
		if err != nil {
			return err
		}
		if !transitional(svc.Status) {
			break
		}
		// The stream ended before the service settled (a proxy cut it, say): reconnect
		// from the last event shown, after a pause so a misbehaving server is not hammered.
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following %s; the operation goes on (see 'eascmd events %s'): %w", name, name, ctx.Err())
		case <-time.After(c.opts.ReconnectDelay):
		}
	}
	if svc.Status == want {
		return nil
	}
	msg := svc.Message
	if msg == "" {
		msg = "Service is " + svc.Status
	}
	fmt.Fprintf(c.opts.Stdout, "[FAILED] %s\n", msg)
	return &reportedError{fmt.Sprintf("service %s is %s: %s", name, svc.Status, msg)}
}

func (c *cli) printEvent(e api.Event) error {
	tag := "[OK]"
	if e.Type == api.EventWarning {
		tag = "[WARN]"
	}
	_, err := fmt.Fprintf(c.opts.Stdout, "%s %s\n", tag, e.Message)
	return err
}

func runList(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("list")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	svcs, err := c.client.List(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(svcs))
	for _, s := range svcs {
		rows = append(rows, []string{s.ServiceName, s.Status,
			fmt.Sprintf("%d/%d", s.RunningInstance, s.TotalInstance), shortImage(s.Image), c.formatTime(s.UpdateTime)})
	}
	writeTable(c.opts.Stdout, []string{"ServiceName", "Status", "Instances", "Image", "UpdateTime"}, rows)
	return nil
}

// shortImage abbreviates a bundle digest "sha256:<64 hex>" to "sha256:<12 hex>".
func shortImage(img string) string {
	if hexPart, ok := strings.CutPrefix(img, "sha256:"); ok && len(hexPart) > 12 {
		return "sha256:" + hexPart[:12]
	}
	return img
}

func (c *cli) formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(c.opts.Location).Format(timeLayout)
}

// describeJSON is `desc -o json`: DescribeService's fields, in its order.
type describeJSON struct {
	ServiceName      string
	Status           string
	RunningInstance  int
	TotalInstance    int
	InternetEndpoint string
	IntranetEndpoint string
	AccessToken      string
	Image            string
	Message          string
}

func runDesc(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("desc")
	output := fs.String("o", "table", "output `format`: table or json")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if *output != "table" && *output != "json" {
		return usagef("eascmd desc: -o %q: expected table or json", *output)
	}
	if err := c.connect(); err != nil {
		return err
	}
	s, err := c.client.Describe(ctx, pos[0])
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(c.opts.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(describeJSON{s.ServiceName, s.Status, s.RunningInstance, s.TotalInstance,
			s.InternetEndpoint, s.IntranetEndpoint, s.AccessToken, s.Image, s.Message})
	}
	writeTable(c.opts.Stdout, nil, [][]string{
		{"ServiceName", s.ServiceName},
		{"Status", s.Status},
		{"Message", s.Message},
		{"RunningInstance", strconv.Itoa(s.RunningInstance)},
		{"TotalInstance", strconv.Itoa(s.TotalInstance)},
		{"InternetEndpoint", s.InternetEndpoint},
		{"IntranetEndpoint", s.IntranetEndpoint},
		{"AccessToken", s.AccessToken},
		{"Image", s.Image},
		{"Processor", s.Processor},
		{"ServedBy", cmp.Or(s.ServedBy, s.Processor)},
		{"Version", strconv.Itoa(s.Version)},
		{"CreateTime", c.formatTime(s.CreateTime)},
		{"UpdateTime", c.formatTime(s.UpdateTime)},
	})
	return nil
}

func runEvents(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("events")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if err := c.connect(); err != nil {
		return err
	}
	evs, err := c.client.Events(ctx, pos[0], 0)
	if err != nil {
		return err
	}
	rows := make([][]string, 0, len(evs))
	for _, e := range evs {
		rows = append(rows, []string{c.formatTime(e.Time), e.Type, e.Message})
	}
	writeTable(c.opts.Stdout, []string{"Time", "Type", "Message"}, rows)
	return nil
}

func runVersion(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("version")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.opts.Stdout, "Client Version: %s\n", c.opts.Version)
	if err := c.connect(); err != nil {
		return err
	}
	v, err := c.client.ServerVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.opts.Stdout, "Server Version: %s\n", v.Version)
	for _, kv := range [][2]string{{"OnnxRuntime Version", v.ORTVersion}, {"Go Version", v.GoVersion},
		{"Scheduler", v.Scheduler}, {"Data Directory", v.DataDir}} {
		if kv[1] != "" {
			fmt.Fprintf(c.opts.Stdout, "%s: %s\n", kv[0], kv[1])
		}
	}
	if !v.StartedTime.IsZero() {
		fmt.Fprintf(c.opts.Stdout, "Started: %s\n", c.formatTime(v.StartedTime))
	}
	return nil
}

// transitional reports whether a service in this status is still on its way somewhere.
func transitional(status string) bool {
	switch status {
	case api.StatusCreating, api.StatusUpdating, api.StatusWaiting, api.StatusDeleting, api.StatusStopping:
		return true
	}
	return false
}
