package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client talks to easd's control-plane API (the routes listed in the package comment).
// It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[/prefix], no trailing slash
	token string
	hc    *http.Client
}

// NewClient returns a client for the server at base (e.g. "http://127.0.0.1:8080";
// a bare "host:port" gets "http://"). token is the admin token sent as a Bearer
// credential; hc nil means a client without an overall timeout (FollowEvents streams
// for as long as a deployment takes, so deadlines belong in the context).
func NewClient(base, token string, hc *http.Client) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if hc == nil {
		hc = &http.Client{}
	}
	// A malformed base is reported by the first call (http.NewRequest), keeping the
	// constructor total.
	return &Client{base: strings.TrimRight(base, "/"), token: token, hc: hc}
}

// StatusError is a non-2xx answer from the server.
type StatusError struct {
	StatusCode int
	Code       string
	Message    string
	RequestID  string
}

// Error gives "Message (HTTP 404 Code)".
func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", msg, e.StatusCode)
	}
	return fmt.Sprintf("%s (HTTP %d %s)", msg, e.StatusCode, e.Code)
}

// IsNotFound reports whether err is a StatusError with HTTP 404.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound
}

// Create submits a service.json and returns the new service (usually Creating).
func (c *Client) Create(ctx context.Context, serviceJSON []byte) (*Service, error) {
	var s Service
	if err := c.do(ctx, http.MethodPost, "/api/v2/services", nil, serviceJSON, &s); err != nil {
		return nil, fmt.Errorf("create service: %w", err)
	}
	return &s, nil
}

// List returns every service.
func (c *Client) List(ctx context.Context) ([]Service, error) {
	var l ServiceList
	if err := c.do(ctx, http.MethodGet, "/api/v2/services", nil, nil, &l); err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return l.Services, nil
}

// Describe returns one service.
func (c *Client) Describe(ctx context.Context, name string) (*Service, error) {
	return c.serviceCall(ctx, "describe", http.MethodGet, name, "", nil)
}

// Modify deep-merges patch (a JSON object) into the service's service.json.
func (c *Client) Modify(ctx context.Context, name string, patch []byte) (*Service, error) {
	return c.serviceCall(ctx, "modify", http.MethodPut, name, "", patch)
}

// Start starts a stopped service.
func (c *Client) Start(ctx context.Context, name string) (*Service, error) {
	return c.serviceCall(ctx, "start", http.MethodPut, name, "/start", nil)
}

// Stop stops a service.
func (c *Client) Stop(ctx context.Context, name string) (*Service, error) {
	return c.serviceCall(ctx, "stop", http.MethodPut, name, "/stop", nil)
}

// Delete deletes a service; the answer has Status Deleting.
func (c *Client) Delete(ctx context.Context, name string) (*Service, error) {
	return c.serviceCall(ctx, "delete", http.MethodDelete, name, "", nil)
}

func (c *Client) serviceCall(ctx context.Context, verb, method, name, suffix string, body []byte) (*Service, error) {
	if name == "" {
		return nil, fmt.Errorf("%s service: empty service name", verb)
	}
	var s Service
	if err := c.do(ctx, method, servicePath(name)+suffix, nil, body, &s); err != nil {
		return nil, fmt.Errorf("%s service %s: %w", verb, name, err)
	}
	return &s, nil
}

// Events returns the service's events with ID > since.
func (c *Client) Events(ctx context.Context, name string, since int64) ([]Event, error) {
	if name == "" {
		return nil, errors.New("events: empty service name")
	}
	q := url.Values{"since": {strconv.FormatInt(since, 10)}}
	var l EventList
	if err := c.do(ctx, http.MethodGet, servicePath(name)+"/events", q, nil, &l); err != nil {
		return nil, fmt.Errorf("events of %s: %w", name, err)
	}
	return l.Events, nil
}

// FollowEvents streams the service's events with ID > since, calling fn for each in
// order, until the server ends the stream (the service settled or was deleted): then it
// returns nil. An error from fn stops the stream and is returned as is; cancelling ctx
// stops it with ctx's error.
func (c *Client) FollowEvents(ctx context.Context, name string, since int64, fn func(Event) error) error {
	if name == "" {
		return errors.New("follow events: empty service name")
	}
	q := url.Values{"since": {strconv.FormatInt(since, 10)}, "follow": {"true"}}
	resp, err := c.send(ctx, http.MethodGet, servicePath(name)+"/events", q, nil)
	if err != nil {
		return fmt.Errorf("follow events of %s: %w", name, err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("follow events of %s: read stream: %w", name, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}

// ServerVersion returns the server's version information.
func (c *Client) ServerVersion(ctx context.Context) (*Version, error) {
	var v Version
	if err := c.do(ctx, http.MethodGet, "/api/v2/version", nil, nil, &v); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	return &v, nil
}

func servicePath(name string) string {
	return "/api/v2/services/" + url.PathEscape(name)
}

// do sends a request and decodes a 2xx JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	resp, err := c.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// send performs the request and returns the response when it is 2xx; otherwise it
// consumes the body and returns a *StatusError.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	u := c.base + path // path segments are already escaped
	if q != nil {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, statusError(resp)
}

// statusError reads an Error body; a body that is not one becomes the message, so a
// proxy's HTML error page or a plain-text answer still says something useful.
func statusError(resp *http.Response) *StatusError {
	se := &StatusError{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if json.Unmarshal(raw, &e) == nil && (e.Message != "" || e.Code != "") {
		se.Code, se.Message = e.Code, e.Message
		if e.RequestID != "" {
			se.RequestID = e.RequestID
		}
		return se
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	se.Message = msg
	return se
}
