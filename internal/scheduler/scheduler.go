// Package scheduler runs the instances of services. A Backend turns a Deployment (service,
// version, bundle, replica count) into running, routed instances and keeps them running.
// Local is the process backend: every instance is an eas-worker child process on loopback.
// A Kubernetes backend would be a second implementation of Backend.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backend runs services' instances.
//
// Run owns supervision and returns once ctx is done and every instance has been stopped.
// Apply makes a service run exactly a Deployment, Stop removes all of a service's instances,
// Status reports them. All methods are safe for concurrent use; Apply and Stop calls for the
// same service are serialized, those for different services run in parallel.
type Backend interface {
	Run(ctx context.Context) error
	Apply(ctx context.Context, d Deployment) error
	Stop(ctx context.Context, service string) error
	Status(service string) Status
}

// Deployment is what one service should run.
type Deployment struct {
	Service   string
	Version   int      // the service version the bundle belongs to; instances of other versions are replaced
	BundleDir string   // sealed bundle directory (bundle.json, model/)
	Replicas  int      // 0 stops every instance but keeps the service known
	Env       []string // added to the inherited environment of each worker
	// Args are extra worker flags for this service, e.g. "--timeout", "5s" from
	// metadata.rpc.keepalive. They cannot override --bundle, --name or --listen.
	Args []string
}

func (d Deployment) validate() error {
	switch {
	case d.Service == "":
		return errors.New("scheduler: deployment: service name is empty")
	case d.BundleDir == "":
		return fmt.Errorf("scheduler: deployment %s: bundle directory is empty", d.Service)
	case d.Replicas < 0:
		return fmt.Errorf("scheduler: deployment %s: replicas is %d, expected 0 or more", d.Service, d.Replicas)
	}
	return nil
}

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	StateStarting   InstanceState = "starting"   // first start, not ready yet
	StateReady      InstanceState = "ready"      // serving (routed unless being replaced)
	StateRestarting InstanceState = "restarting" // exited unexpectedly; waiting out its backoff or loading again
	StateStopping   InstanceState = "stopping"   // removed from routing, draining
)

// Instance is a snapshot of one instance.
type Instance struct {
	ID        string
	Version   int
	Addr      string // host:port of the worker; empty until it listens
	PID       int
	State     InstanceState
	Restarts  int
	Started   time.Time // when the current process started
	LastError string    // why the last process failed or exited, with its last stderr lines
}

// Status is a snapshot of one service. Ready counts routed, ready instances; Total counts the
// instances that are meant to stay (not those being stopped).
type Status struct {
	Service   string
	Ready     int
	Total     int
	Instances []Instance
}

// Endpoint is one routable instance.
type Endpoint struct {
	ID      string
	Addr    string // host:port of the worker's HTTP server
	Socket  string // unix socket of its framed protocol (package frame); "" when none
	Version int
}

// Router receives the set of ready endpoints of a service whenever it changes (an empty set
// means: nothing to route to). It is called with the scheduler's table lock held, in the order
// the changes happen, so it must not call back into the scheduler and should return quickly.
type Router interface {
	SetEndpoints(service string, eps []Endpoint)
}

// EventFunc reports a service event: typ is "Normal" or "Warning". It is called without any
// scheduler lock held, from the goroutine that saw the change.
type EventFunc func(service, typ, message string)

// ErrClosed is returned by Apply and Stop after Run has begun shutting down.
var ErrClosed = errors.New("scheduler: shutting down")
