// Package api holds the control-plane wire types and the Go client that eascmd uses.
// Field names follow Alibaba PAI-EAS's OpenAPI (PascalCase, DescribeService fields),
// so scripts written against EAS read our answers unchanged.
//
// Routes (all require "Authorization: Bearer <admin token>"):
//
//	POST   /api/v2/services                 body: service.json            → Service
//	GET    /api/v2/services                                               → ServiceList
//	GET    /api/v2/services/{name}                                        → Service
//	PUT    /api/v2/services/{name}          body: JSON object deep-merged into the current service.json
//	                                        (objects merge key by key; arrays and scalars replace) → Service
//	PUT    /api/v2/services/{name}/start                                  → Service
//	PUT    /api/v2/services/{name}/stop                                   → Service
//	DELETE /api/v2/services/{name}                                        → Service (Status Deleting)
//	GET    /api/v2/services/{name}/events?since=ID                        → EventList
//	GET    /api/v2/services/{name}/events?since=ID&follow=true            → NDJSON stream of Event, one per
//	                                        line, that ends when the service settles (Running, Failed, Stopped)
//	                                        or is deleted
//	GET    /api/v2/version                                                → Version
//
// Errors: any non-2xx answer carries an Error body.
package api

import (
	"encoding/json"
	"time"
)

// Service states, named as in EAS.
const (
	StatusCreating = "Creating"
	StatusRunning  = "Running"
	StatusUpdating = "Updating"
	StatusStopping = "Stopping"
	StatusStopped  = "Stopped"
	StatusFailed   = "Failed"
	StatusDeleting = "Deleting"
	StatusWaiting  = "Waiting"
)

// Service is DescribeService's answer.
type Service struct {
	ServiceName      string `json:"ServiceName"`
	Status           string `json:"Status"`
	Message          string `json:"Message"`
	RunningInstance  int    `json:"RunningInstance"`
	TotalInstance    int    `json:"TotalInstance"`
	InternetEndpoint string `json:"InternetEndpoint"`
	IntranetEndpoint string `json:"IntranetEndpoint"`
	AccessToken      string `json:"AccessToken"`
	// Image is the bundle digest ("sha256:<hex>") the running version serves.
	Image     string `json:"Image"`
	Processor string `json:"Processor"`
	// ServedBy is what serves that bundle when it is not Processor itself: e.g.
	// onnxruntime_cpu for a TensorFlow graph converted to ONNX, or pytorch_cpu for
	// pytorch_gpu on a host without a GPU runtime (easd --gpu-fallback). Empty otherwise.
	ServedBy   string    `json:"ServedBy,omitempty"`
	Version    int       `json:"Version"` // current version number, from 1
	CreateTime time.Time `json:"CreateTime"`
	UpdateTime time.Time `json:"UpdateTime"`
	// LastEventID is the ID of the newest event when this answer was made: follow events
	// with since=LastEventID after a create/modify/start/stop to see only what that call caused.
	LastEventID int64 `json:"LastEventID"`
	// ServiceConfig is the service.json of the current version, with defaults applied.
	ServiceConfig json.RawMessage `json:"ServiceConfig,omitempty"`
}

// ServiceList is the list answer.
type ServiceList struct {
	Services []Service `json:"Services"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event is one step of a service's history, shown by `eascmd events` and as the
// "[OK] …" lines of `eascmd create`.
type Event struct {
	ID      int64     `json:"ID"`
	Time    time.Time `json:"Time"`
	Type    string    `json:"Type"` // Normal or Warning
	Message string    `json:"Message"`
	// Status is the service status right after this event.
	Status string `json:"Status,omitempty"`
}

// EventList is the events answer.
type EventList struct {
	Events []Event `json:"Events"`
}

// Version identifies the server.
type Version struct {
	Version     string    `json:"Version"`
	ORTVersion  string    `json:"OnnxRuntimeVersion,omitempty"`
	DataDir     string    `json:"DataDir,omitempty"`
	Scheduler   string    `json:"Scheduler,omitempty"`
	GoVersion   string    `json:"GoVersion,omitempty"`
	StartedTime time.Time `json:"StartedTime"`
}

// Error is the body of every non-2xx control-plane answer.
type Error struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	RequestID string `json:"RequestId,omitempty"`
}
