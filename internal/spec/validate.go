package spec

import (
	"bytes"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// NamePattern is the rule for service names: lowercase letters, digits and underscores,
// starting with a letter, at most 63 characters. (EAS's published rule could not be
// checked here; this one fits its examples and is safe in URLs, file names, SQL and
// Kubernetes names once underscores become dashes.)
const NamePattern = `^[a-z][a-z0-9_]{0,62}$`

var namePattern = regexp.MustCompile(NamePattern)

// MaxTokenLength bounds user-chosen tokens.
const MaxTokenLength = 256

// ValidName reports whether name is a valid service name.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// Validate checks a service that has had its defaults applied (Parse does both) and
// returns an Errors listing every problem, each as "json.path: message". Every processor
// name EAS knows passes; use ValidateCreate to also require one this build can serve.
func (s *Service) Validate() error {
	var errs Errors
	switch {
	case s.Name == "":
		errs.add("name", "required")
	case !ValidName(s.Name):
		errs.add("name", "must match %s (lowercase letters, digits and underscores, starting with a letter, at most 63 characters), got %q", NamePattern, s.Name)
	}
	if s.Token != "" {
		// Never echo the token: it is a secret.
		if len(s.Token) > MaxTokenLength {
			errs.add("token", "must be at most %d characters, got %d", MaxTokenLength, len(s.Token))
		} else if !printableASCII(s.Token) {
			errs.add("token", "must be printable ASCII without spaces")
		}
	}
	if s.GenerateToken != nil && !*s.GenerateToken && s.Token == "" {
		errs.add("generate_token", "false needs a token: OpenEAS never serves a service without one")
	}
	if s.ModelPath == "" {
		errs.add("model_path", "required")
	} else {
		checkSource(&errs, "model_path", s.ModelPath)
	}
	if s.OSSEndpoint != "" && strings.ContainsAny(s.OSSEndpoint, " \t\r\n") {
		errs.add("oss_endpoint", "must not contain spaces, got %q", s.OSSEndpoint)
	}
	if s.ModelEntry != "" && !localRelPath(s.ModelEntry) {
		errs.add("model_entry", "must be a relative slash-separated path inside the model, got %q", s.ModelEntry)
	}
	if s.Processor == "" {
		errs.add("processor", "required")
	} else if _, err := ResolveProcessor(s.Processor); err != nil {
		errs.add("processor", "%v", err)
	}
	if s.WarmUpDataPath != "" {
		checkSource(&errs, "warm_up_data_path", s.WarmUpDataPath)
	}
	s.Metadata.validate(&errs)
	for i, p := range s.Plugins {
		p.validate(&errs, joinIndex("plugins", i))
	}
	return errs.err()
}

// ValidateCreate is Validate plus what creating a service needs: at least one instance
// and a processor this build can serve.
func (s *Service) ValidateCreate() error {
	var errs Errors
	if err := s.Validate(); err != nil {
		errs = append(errs, err.(Errors)...)
	}
	if s.Metadata.Instance == 0 {
		errs.add("metadata.instance", "must be at least 1 to create a service, got 0")
	}
	return errs.err()
}

func (m *Metadata) validate(errs *Errors) {
	if m.Instance < 0 || m.Instance > MaxInstances {
		errs.add("metadata.instance", "must be between 0 and %d, got %d", MaxInstances, m.Instance)
	}
	nonNegative(errs, "metadata.cpu", m.CPU)
	nonNegative(errs, "metadata.memory", m.Memory)
	nonNegative(errs, "metadata.gpu", m.GPU)
	nonNegative(errs, "metadata.gpu_memory", m.GPUMemory)
	if m.CUDA != "" && !cudaPattern.MatchString(m.CUDA) {
		errs.add("metadata.cuda", "must be a version like \"11.8\", got %q", m.CUDA)
	}
	r := m.RPC
	between(errs, "metadata.rpc.keepalive", r.Keepalive, 1, MaxKeepalive)
	between(errs, "metadata.rpc.worker_threads", r.WorkerThreads, 1, MaxWorkerThreads)
	between(errs, "metadata.rpc.max_queue_size", r.MaxQueueSize, 1, MaxQueueSize)
	nonNegative(errs, "metadata.rpc.rate_limit", r.RateLimit)
	if r.Batching {
		between(errs, "metadata.rpc.max_batch_size", r.MaxBatchSize, 1, MaxBatchSize)
		between(errs, "metadata.rpc.max_batch_timeout", r.MaxBatchTimeout, 0, MaxBatchTimeout)
	} else {
		nonNegative(errs, "metadata.rpc.max_batch_size", r.MaxBatchSize)
		nonNegative(errs, "metadata.rpc.max_batch_timeout", r.MaxBatchTimeout)
	}
}

var cudaPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,2}$`)

func (p *Plugin) validate(errs *Errors, at string) {
	if strings.TrimSpace(p.Command) == "" {
		errs.add(at+".command", "required")
	}
	if strings.TrimSpace(p.Image) == "" {
		errs.add(at+".image", "required")
	}
	nonNegative(errs, at+".gpu", p.GPU)
	if c := bytes.TrimSpace(p.Config); len(c) > 0 && c[0] != '{' && string(c) != "null" {
		errs.add(at+".config", "expected object, got %s", rawKind(c))
	}
}

func rawKind(raw []byte) string {
	switch raw[0] {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

func nonNegative(errs *Errors, at string, v int) {
	if v < 0 {
		errs.add(at, "must not be negative, got %d", v)
	}
}

func between(errs *Errors, at string, v, lo, hi int) {
	if v < lo || v > hi {
		errs.add(at, "must be between %d and %d, got %d", lo, hi, v)
	}
}

// checkSource checks a model_path-like location: an absolute local path or a URL with a
// scheme the model fetchers know.
func checkSource(errs *Errors, at, loc string) {
	scheme, _, isURL := strings.Cut(loc, "://")
	if !isURL {
		if !path.IsAbs(loc) {
			errs.add(at, "must be an absolute path or a URL (file://, http://, https://, oss://, s3://), got %q", loc)
		}
		return
	}
	u, err := url.Parse(loc)
	if err != nil {
		// Not echoed: url.Parse's error quotes the whole URL, credentials included.
		errs.add(at, "is not a valid %s URL", strings.ToLower(scheme))
		return
	}
	switch strings.ToLower(scheme) {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) {
			errs.add(at, "file:// URL must name an absolute local path (file:///dir/model), got %q", loc)
		}
	case "http", "https":
		if u.Host == "" {
			errs.add(at, "URL has no host: %q", u.Redacted())
		}
	case "oss", "s3":
		if u.Host == "" {
			errs.add(at, "%s:// URL has no bucket: %q", strings.ToLower(scheme), loc)
		}
	default:
		errs.add(at, "unsupported scheme %q; use an absolute path, file://, http://, https://, oss:// or s3://", scheme)
	}
}

// localRelPath reports whether p is a clean relative slash path that stays inside its root.
func localRelPath(p string) bool {
	if path.IsAbs(p) || strings.Contains(p, `\`) {
		return false
	}
	c := path.Clean(p)
	return c != "." && c != ".." && !strings.HasPrefix(c, "../")
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
