package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every testdata/*.bad.json must appear here with the exact error it gets.
var badFiles = map[string]string{
	"duplicate_key.bad.json":    `name: duplicate key`,
	"empty.bad.json":            `empty document, expected a JSON object`,
	"not_object.bad.json":       `expected a JSON object, got array`,
	"syntax.bad.json":           `invalid JSON at line 4, column 1: invalid character '}' looking for beginning of object key string`,
	"trailing_data.bad.json":    `invalid JSON at line 1, column 56: unexpected data after the top-level value`,
	"missing_required.bad.json": `name: required; model_path: required; processor: required`,
	"unknown_fields.bad.json": `metadata.instanse: unknown field; did you mean "instance"?; ` +
		`metadata.rpc.foo: unknown field; ` +
		`Token: unknown field; did you mean "token"?`,
	"wrong_types.bad.json": `name: expected string, got number 5; ` +
		`generate_token: expected boolean (true or false), got string "yes"; ` +
		`metadata.instance: expected integer, got string "2"; ` +
		`metadata.cuda: expected string, got number 10.0; ` +
		`metadata.rpc.batching: expected boolean (true or false), got number 1; ` +
		`plugins: expected array, got object`,
	"unsupported_and_fraction.bad.json": `containers: not supported by OpenEAS: custom-image services are not supported; use a built-in processor; ` +
		`metadata.instance: expected integer, got number 1.5`,
	"sources_and_token.bad.json": `generate_token: false needs a token: OpenEAS never serves a service without one; ` +
		`model_path: unsupported scheme "ftp"; use an absolute path, file://, http://, https://, oss:// or s3://; ` +
		`warm_up_data_path: oss:// URL has no bucket: "oss:///nobucket"`,
	"invalid_values.bad.json": `name: must match ^[a-z][a-z0-9_]{0,62}$ (lowercase letters, digits and underscores, starting with a letter, at most 63 characters), got "Bad-Name"; ` +
		`model_path: must be an absolute path or a URL (file://, http://, https://, oss://, s3://), got "models/x"; ` +
		`model_entry: must be a relative slash-separated path inside the model, got "../escape.onnx"; ` +
		`processor: unknown processor "foo"; known: ` + knownProcessorsText + `; ` +
		`metadata.instance: must be between 0 and 100, got -1; ` +
		`metadata.cpu: must not be negative, got -1; ` +
		`metadata.cuda: must be a version like "11.8", got "ten"; ` +
		`metadata.rpc.keepalive: must be between 1 and 600000, got -5; ` +
		`metadata.rpc.worker_threads: must be between 1 and 1024, got 2000; ` +
		`metadata.rpc.max_batch_size: must be between 1 and 4096, got 5000; ` +
		`plugins[0].image: required; ` +
		`plugins[1].command: required; ` +
		`plugins[1].gpu: must not be negative, got -1; ` +
		`plugins[1].config: expected object, got array`,
}

func TestParseBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.bad.json: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := badFiles[name]
			if !ok {
				t.Fatalf("%s has no expected error in badFiles", name)
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(data)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
		})
	}
	if len(files) != len(badFiles) {
		t.Errorf("badFiles has %d entries, testdata has %d bad files", len(badFiles), len(files))
	}
}

func TestErrorsListEveryProblemWithPath(t *testing.T) {
	_, err := Parse([]byte(`{"name":"a","model_path":"/m","processor":"onnx","plugins":[{},{"command":"c"}]}`))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error %v (%T) is not an Errors", err, err)
	}
	var paths []string
	for _, e := range es {
		paths = append(paths, e.Path)
	}
	want := []string{"plugins[0].command", "plugins[0].image", "plugins[1].image"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}

	// JSON that does not parse is one problem without a path, in the same error type.
	_, err = Parse([]byte(`{"name": }`))
	if !errors.As(err, &es) || len(es) != 1 || es[0].Path != "" {
		t.Errorf("syntax error %v (%T): want one Errors entry without a path", err, err)
	}
}

func mustReadParse(t *testing.T, file string) *Service {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse %s: %v", file, err)
	}
	return s
}

func TestParseGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least the three seed examples in testdata: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s := mustReadParse(t, filepath.Base(f))
			// What we store must parse back to the same service.
			b, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal()) = %v\n%s", err, b)
			}
			if !reflect.DeepEqual(s, again) {
				t.Errorf("round trip changed the service:\n%+v\n%+v", s, again)
			}
		})
	}
}

func TestSeedExample3(t *testing.T) {
	s := mustReadParse(t, "seed_example3.good.json")
	if s.Name != "blade_eas_plugin_test" || s.Processor != "tensorflow_gpu_1.15" || s.Resource != "<yourEASResource>" {
		t.Errorf("top level: %+v", s)
	}
	m := s.Metadata
	if m.CPU != 4 || m.GPU != 1 || m.Instance != 1 || m.Memory != 4096 || m.CUDA != "10.0" || m.MemoryBytes() != 4096<<20 {
		t.Errorf("metadata: %+v", m)
	}
	if m.RPC != DefaultRPC() {
		t.Errorf("rpc %+v, want defaults %+v", m.RPC, DefaultRPC())
	}
	if len(s.Plugins) != 1 {
		t.Fatalf("plugins: %+v", s.Plugins)
	}
	p := s.Plugins[0]
	if p.Command != "blade --mode eas_plugin --optimize_for gpu" || p.GPU != 1 || p.Resource != "T4_8CORE" ||
		p.Image != "registry.cn-shanghai.aliyuncs.com/eas/pai-blade-deploy:gpu_latest" {
		t.Errorf("plugin: %+v", p)
	}
	wantConfig := `{"model_info":{"frozen.pb":{"optimization_level":"o1","inputs":["input_ids_a_1"],"outputs":["l2_normalize"],"test_data":"test_len9240_bc1.npy"}}}`
	if string(p.Config) != wantConfig {
		t.Errorf("config\n got %s\nwant %s", p.Config, wantConfig)
	}
	info, err := ResolveProcessor(s.Processor)
	if err != nil || info.Family != FamilyTensorFlow || !info.GPU || info.OnCPU().Name != "tensorflow_cpu_1.15" {
		t.Errorf("ResolveProcessor(%q) = %+v, %v", s.Processor, info, err)
	}
}

func TestDefaultsAndTypedValues(t *testing.T) {
	s := mustReadParse(t, "minimal.good.json")
	if s.Metadata.Instance != 1 {
		t.Errorf("absent instance = %d, want 1", s.Metadata.Instance)
	}
	if got := s.Metadata.RPC.KeepaliveDuration(); got != 5*time.Second {
		t.Errorf("keepalive %v, want 5s", got)
	}
	if s.Metadata.RPC.WorkerThreads != 5 || s.Metadata.RPC.MaxQueueSize != 64 || s.Metadata.RPC.RateLimit != 0 {
		t.Errorf("rpc defaults: %+v", s.Metadata.RPC)
	}
	if s.Metadata.RPC.MaxBatchSize != 0 {
		t.Errorf("batch size set without batching: %+v", s.Metadata.RPC)
	}
	if !s.WantsGeneratedToken() {
		t.Error("no token and no generate_token: a token should be generated")
	}

	full := mustReadParse(t, "onnx_full.good.json")
	r := full.Metadata.RPC
	if !r.Batching || r.MaxBatchSize != 8 || r.MaxBatchTimeoutDuration() != 5*time.Millisecond ||
		r.KeepaliveDuration() != 20*time.Second || r.RateLimit != 50 {
		t.Errorf("rpc: %+v", r)
	}
	if full.GenerateToken == nil || !*full.GenerateToken {
		t.Errorf(`"generate_token": "true" gave %v`, full.GenerateToken)
	}

	batching, err := Parse([]byte(`{"name":"b","model_path":"/m","processor":"onnx","metadata":{"rpc":{"batching":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := batching.Metadata.RPC; got.MaxBatchSize != DefaultMaxBatchSize || got.MaxBatchTimeout != DefaultMaxBatchTimeout {
		t.Errorf("batching defaults: %+v", got)
	}

	zero, err := Parse([]byte(`{"name":"z","model_path":"/m","processor":"onnx","metadata":{"instance":0}}`))
	if err != nil {
		t.Fatalf("instance 0 must be a valid service.json: %v", err)
	}
	if zero.Metadata.Instance != 0 {
		t.Errorf("explicit instance 0 became %d", zero.Metadata.Instance)
	}
}

func TestValidateCreate(t *testing.T) {
	tests := []struct {
		doc  string
		want string // "" = ok
	}{
		{`{"name":"a","model_path":"/m","processor":"onnx"}`, ""},
		{`{"name":"a","model_path":"/m","processor":"onnx","metadata":{"instance":0}}`,
			"metadata.instance: must be at least 1 to create a service, got 0"},
		{`{"name":"a","model_path":"/m","processor":"pytorch"}`, ""}, // libtorch's presence is checked by deploy
		{`{"name":"a","model_path":"/m","processor":"tensorflow_cpu_1.15"}`, ""},
		// Whether the host has a GPU for it is the deploy layer's question (it may serve on CPU).
		{`{"name":"a","model_path":"/m","processor":"tensorflow_gpu_1.15"}`, ""},
		{`{"name":"a","model_path":"/m","processor":"onnx_gpu","metadata":{"instance":0}}`,
			"metadata.instance: must be at least 1 to create a service, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			s, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			err = s.ValidateCreate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ValidateCreate\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	base := func() Service {
		s := Service{Name: "svc", ModelPath: "/m", Processor: "onnx", Metadata: Metadata{Instance: 1}}
		s.ApplyDefaults()
		return s
	}
	long := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		mutate func(*Service)
		want   string
	}{
		{"63-char name", func(s *Service) { s.Name = long[:63] }, ""},
		{"64-char name", func(s *Service) { s.Name = long }, `name: must match`},
		{"leading digit", func(s *Service) { s.Name = "1svc" }, `name: must match`},
		{"token with space is refused, not echoed", func(s *Service) { s.Token = "secret token" }, "token: must be printable ASCII without spaces"},
		{"token too long", func(s *Service) { s.Token = strings.Repeat("t", 257) }, "token: must be at most 256 characters, got 257"},
		{"token and generate_token false", func(s *Service) { f := false; s.GenerateToken = &f; s.Token = "abc" }, ""},
		{"file URL with host", func(s *Service) { s.ModelPath = "file://host/m" }, "model_path: file:// URL must name an absolute local path"},
		{"http without host", func(s *Service) { s.ModelPath = "http:///m" }, `model_path: URL has no host`},
		{"credentials are not echoed", func(s *Service) { s.ModelPath = "https://u:secret@/m" }, `model_path: URL has no host: "https://u:xxxxx@/m"`},
		{"bad URL is not echoed", func(s *Service) { s.ModelPath = "http://u:secret@[::1" }, "model_path: is not a valid http URL"},
		{"s3 ok", func(s *Service) { s.ModelPath = "s3://bucket/key.onnx" }, ""},
		{"oss ok", func(s *Service) { s.ModelPath = "oss://bucket/dir/" }, ""},
		{"absolute model entry", func(s *Service) { s.ModelEntry = "/abs.onnx" }, "model_entry: must be a relative"},
		{"nested model entry", func(s *Service) { s.ModelEntry = "sub/model.onnx" }, ""},
		{"101 instances", func(s *Service) { s.Metadata.Instance = 101 }, "metadata.instance: must be between 0 and 100, got 101"},
		{"negative rate limit", func(s *Service) { s.Metadata.RPC.RateLimit = -1 }, "metadata.rpc.rate_limit: must not be negative, got -1"},
		{"zero queue after defaults is caught", func(s *Service) { s.Metadata.RPC.MaxQueueSize = 0 }, "metadata.rpc.max_queue_size: must be between 1 and 1048576, got 0"},
		{"keepalive too long", func(s *Service) { s.Metadata.RPC.Keepalive = MaxKeepalive + 1 }, "metadata.rpc.keepalive: must be between 1 and 600000"},
		{"null plugin config", func(s *Service) { s.Plugins = []Plugin{{Command: "c", Image: "i", Config: []byte("null")}} }, ""},
		{"string plugin config", func(s *Service) { s.Plugins = []Plugin{{Command: "c", Image: "i", Config: []byte(`"x"`)}} }, "plugins[0].config: expected object, got string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.mutate(&s)
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("error %v, want prefix %q", err, tt.want)
			}
			if err != nil && s.Token != "" && strings.Contains(err.Error(), s.Token) {
				t.Errorf("error reveals the token: %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error reveals a secret: %v", err)
			}
		})
	}
}

func TestResolveProcessor(t *testing.T) {
	tests := []struct {
		name, canonical, family, onCPU string
	}{
		{"onnxruntime_cpu", "onnxruntime_cpu", FamilyONNX, "onnxruntime_cpu"},
		{"onnx_cpu", "onnxruntime_cpu", FamilyONNX, "onnxruntime_cpu"},
		{"onnxruntime", "onnxruntime_cpu", FamilyONNX, "onnxruntime_cpu"},
		{"onnx", "onnxruntime_cpu", FamilyONNX, "onnxruntime_cpu"},
		{"onnx_gpu", "onnxruntime_gpu", FamilyONNX, "onnxruntime_cpu"},
		{"pytorch", "pytorch_cpu", FamilyPyTorch, "pytorch_cpu"},
		{"pytorch_cpu_1.6", "pytorch_cpu", FamilyPyTorch, "pytorch_cpu"},
		{"pytorch_gpu_1.13", "pytorch_gpu", FamilyPyTorch, "pytorch_cpu"},
		{"tensorflow", "tensorflow_cpu_1.15", FamilyTensorFlow, "tensorflow_cpu_1.15"},
		{"tensorflow_cpu_2.7", "tensorflow_cpu_2.7", FamilyTensorFlow, "tensorflow_cpu_2.7"},
		{"tensorflow_gpu_1.12", "tensorflow_gpu_1.12", FamilyTensorFlow, "tensorflow_cpu_1.12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ResolveProcessor(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.canonical || p.Family != tt.family {
				t.Errorf("got %+v", p)
			}
			if c := p.OnCPU(); c.Name != tt.onCPU || c.GPU || c.Family != p.Family {
				t.Errorf("OnCPU() = %+v, want %s", c, tt.onCPU)
			}
		})
	}
	for _, bad := range []struct{ name, want string }{
		{"onnxruntime-cpu", `unknown processor "onnxruntime-cpu"; did you mean "onnxruntime_cpu"?; known: onnxruntime_cpu,`},
		{"caffe", `unknown processor "caffe"; known: onnxruntime_cpu,`},
		{"ONNX", `unknown processor "ONNX"; did you mean "onnx"?`},
		{"pytorch_cpu_2.0", `unknown processor "pytorch_cpu_2.0"; did you mean`},
	} {
		_, err := ResolveProcessor(bad.name)
		if err == nil || !strings.HasPrefix(err.Error(), bad.want) {
			t.Errorf("ResolveProcessor(%q) = %v, want prefix %q", bad.name, err, bad.want)
		}
	}
	for _, n := range KnownProcessors() {
		if _, err := ResolveProcessor(n); err != nil {
			t.Errorf("known name %q does not resolve: %v", n, err)
		}
	}
}
