// Package spec is service.json as PAI-EAS accepts it: the types, strict decoding (unknown
// fields and wrong types are reported with their JSON path), defaults, validation, the
// `eascmd -D key=value` overrides, the merge used by `eascmd modify`, and processor names.
//
// Parse is the one entry point for a document a user wrote: decode strictly, apply
// defaults, validate. Every error names the JSON path it is about ("plugins[0].image:
// required") and Validate reports every problem at once, not just the first.
//
// Decisions where EAS leaves room (see also the field comments):
//   - metadata.instance absent means 1. An explicit 0 is a valid service.json (a service
//     kept but scaled to zero, e.g. by `eascmd modify -Dmetadata.instance=0`), but creating
//     a service needs at least one instance: ValidateCreate says so.
//   - Validate accepts every processor name EAS knows, so any EAS service.json validates;
//     ValidateCreate also refuses processors this build cannot serve yet, with the reason.
//   - model_path and warm_up_data_path, when local, must be absolute: the server cannot know
//     the directory a relative path was written against (eascmd resolves them first).
//   - Booleans also accept the strings "true" and "false", as EAS does ("generate_token": "true").
//     Numbers and strings are strict: "instance": "2" is an error, not a 2.
//   - generate_token false with no token is refused: OpenEAS never serves a service
//     without a token.
package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Service is service.json.
type Service struct {
	// Name is unique among services; see NamePattern.
	Name string `json:"name"`
	// Token is the access token of /api/predict/{name}. Empty: one is generated at create
	// (unless GenerateToken is false, which Validate refuses without a token).
	Token string `json:"token,omitempty"`
	// GenerateToken is EAS's "generate_token" (true or "true"); nil means true.
	GenerateToken *bool `json:"generate_token,omitempty"`

	// ModelPath is where the model comes from: an absolute local path, file://, http(s)://,
	// oss:// or s3://. Archives (.tar.gz, .tgz, .tar.bz2, .zip) are unpacked.
	ModelPath string `json:"model_path"`
	// OSSEndpoint is the OSS endpoint for oss:// paths (e.g. "oss-cn-shanghai.aliyuncs.com").
	OSSEndpoint string `json:"oss_endpoint,omitempty"`
	// ModelEntry is the main model file inside the model directory (slash-separated, relative).
	ModelEntry string `json:"model_entry,omitempty"`
	// ModelConfig is free text passed to the processor.
	ModelConfig string `json:"model_config,omitempty"`
	// Processor is a processor name as EAS spells it; see ResolveProcessor.
	Processor string `json:"processor"`
	// WarmUpDataPath holds requests replayed before an instance takes traffic.
	WarmUpDataPath string `json:"warm_up_data_path,omitempty"`
	// Resource is the resource group the service runs on (recorded; the local backend has one).
	Resource string `json:"resource,omitempty"`

	Metadata Metadata `json:"metadata"`
	// Plugins run in order at deploy time, each turning a model directory into another.
	Plugins []Plugin `json:"plugins,omitempty"`
}

// Metadata is service.json's "metadata": instances, resources per instance, and serving settings.
type Metadata struct {
	// Instance is the number of instances (0..MaxInstances). Parse makes an absent one 1;
	// ApplyDefaults leaves it alone, since 0 is meaningful (scaled to zero).
	Instance int `json:"instance"`
	// CPU is cores per instance; 0 means no limit.
	CPU int `json:"cpu,omitempty"`
	// Memory is megabytes per instance (EAS's unit); 0 means no limit. See MemoryBytes.
	Memory int `json:"memory,omitempty"`
	// GPU is GPUs per instance.
	GPU int `json:"gpu,omitempty"`
	// GPUMemory is gigabytes of GPU memory per instance (EAS's unit, for shared GPUs).
	GPUMemory int `json:"gpu_memory,omitempty"`
	// CUDA is the CUDA version a GPU processor needs, e.g. "10.0".
	CUDA string `json:"cuda,omitempty"`
	RPC  RPC    `json:"rpc"`
}

// MemoryBytes is Memory in bytes (0 = no limit).
func (m Metadata) MemoryBytes() int64 { return int64(m.Memory) << 20 }

// RPC is "metadata.rpc": how each instance takes requests. Units are EAS's: milliseconds
// and counts. Zero values are replaced by the defaults below before validation.
type RPC struct {
	// Keepalive is the per-request timeout in milliseconds; exceeded → HTTP 408.
	Keepalive int `json:"keepalive"`
	// WorkerThreads is how many requests an instance runs at once.
	WorkerThreads int `json:"worker_threads"`
	// MaxQueueSize is how many requests may wait; a full queue answers HTTP 450.
	MaxQueueSize int `json:"max_queue_size"`
	// RateLimit is a QPS limit per service (0 = off); exceeded → HTTP 429.
	RateLimit int `json:"rate_limit,omitempty"`
	// Batching turns on server-side batching of concurrent requests.
	Batching bool `json:"batching,omitempty"`
	// MaxBatchSize is the largest batch when Batching (default DefaultMaxBatchSize).
	MaxBatchSize int `json:"max_batch_size,omitempty"`
	// MaxBatchTimeout is how long, in milliseconds, a batch waits to fill when Batching
	// (default DefaultMaxBatchTimeout).
	MaxBatchTimeout int `json:"max_batch_timeout,omitempty"`
}

// Defaults of metadata.rpc, as EAS documents them (batching ones are ours).
const (
	DefaultKeepalive       = 5000 // ms
	DefaultWorkerThreads   = 5
	DefaultMaxQueueSize    = 64
	DefaultMaxBatchSize    = 16
	DefaultMaxBatchTimeout = 10 // ms
	DefaultInstance        = 1
)

// Limits enforced by Validate.
const (
	MaxInstances     = 100
	MaxKeepalive     = 600_000 // ms: ten minutes
	MaxWorkerThreads = 1024
	MaxQueueSize     = 1 << 20
	MaxBatchSize     = 4096
	MaxBatchTimeout  = 60_000 // ms
)

// DefaultRPC returns metadata.rpc with every default applied.
func DefaultRPC() RPC {
	return RPC{Keepalive: DefaultKeepalive, WorkerThreads: DefaultWorkerThreads, MaxQueueSize: DefaultMaxQueueSize}
}

// KeepaliveDuration is Keepalive as a duration.
func (r RPC) KeepaliveDuration() time.Duration { return time.Duration(r.Keepalive) * time.Millisecond }

// MaxBatchTimeoutDuration is MaxBatchTimeout as a duration.
func (r RPC) MaxBatchTimeoutDuration() time.Duration {
	return time.Duration(r.MaxBatchTimeout) * time.Millisecond
}

// Plugin is one entry of "plugins".
type Plugin struct {
	// Command is the plugin's command line, split like a shell would.
	Command string `json:"command"`
	// Image selects the program (the Blade images, or local:///abs/path).
	Image string `json:"image"`
	// Resource is the resource group the plugin runs on (recorded).
	Resource string `json:"resource,omitempty"`
	// GPU is how many GPUs the plugin uses.
	GPU int `json:"gpu,omitempty"`
	// Config is the plugin's own configuration (Blade: {"model_info": {...}}), not
	// interpreted here: the plugin validates its keys. It must be a JSON object. After
	// Parse it is compact JSON with the user's key order.
	Config json.RawMessage `json:"config,omitempty"`
}

// ApplyDefaults fills the fields a user may leave out. Parse calls it; callers building a
// Service by hand call it before Validate.
func (s *Service) ApplyDefaults() {
	if s.Metadata.RPC.Keepalive == 0 {
		s.Metadata.RPC.Keepalive = DefaultKeepalive
	}
	if s.Metadata.RPC.WorkerThreads == 0 {
		s.Metadata.RPC.WorkerThreads = DefaultWorkerThreads
	}
	if s.Metadata.RPC.MaxQueueSize == 0 {
		s.Metadata.RPC.MaxQueueSize = DefaultMaxQueueSize
	}
	if s.Metadata.RPC.Batching {
		if s.Metadata.RPC.MaxBatchSize == 0 {
			s.Metadata.RPC.MaxBatchSize = DefaultMaxBatchSize
		}
		if s.Metadata.RPC.MaxBatchTimeout == 0 {
			s.Metadata.RPC.MaxBatchTimeout = DefaultMaxBatchTimeout
		}
	}
}

// WantsGeneratedToken reports whether a token must be generated at create.
func (s *Service) WantsGeneratedToken() bool {
	return s.Token == "" && (s.GenerateToken == nil || *s.GenerateToken)
}

// Marshal returns the service as compact JSON (what the store keeps and DescribeService shows).
func (s *Service) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("spec: encode service %q: %w", s.Name, err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
