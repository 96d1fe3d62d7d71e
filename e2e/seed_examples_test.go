package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/openeas/openeas/internal/api"
	"github.com/openeas/openeas/internal/easpb/tfpb"
	"github.com/openeas/openeas/internal/objstore/miniotest"
)

// seedFixtureFiles are the files of testdata/tf/textcnn a user would upload as the model
// directory: the graph example 3's model_info names and its test_data.
var seedFixtureFiles = []string{"frozen.pb", "test_len9240_bc1.npy"}

// TestSeedExamples deploys the seed's three service files (testdata/seed, copied verbatim
// from the Blade EAS plugin guide) with nothing changed but model_path, pointed at the
// TextCNN fixture on the test MinIO (oss://…/ directory) or, without MinIO, a local
// directory. Each serves the tfjs reference through the EAS TF protobuf format with TF names;
// Blade runs for examples 2 and 3 and not for 1. Example 3 asks for tensorflow_gpu_1.15 and
// --optimize_for gpu: on a host without a GPU runtime it is served on CPU, saying so.
// The three share one service name, so each is deleted before the next.
func TestSeedExamples(t *testing.T) {
	e := requireEnv(t)
	if _, err := os.Stat(filepath.Join(e.bin, "blade")); err != nil {
		t.Fatalf("blade missing in OPENEAS_BIN=%s: run make build", e.bin)
	}
	src := filepath.Join(e.repo, "testdata/tf/textcnn")
	modelPath := seedModelDir(t, src)
	d := startEasd(t, e, "")
	ref := loadTextCNNRef(t, src)

	cases := []struct {
		file    string
		blade   string // the plugin image whose Blade run the events show; "" for none
		warning string // a Warning event must contain this
	}{
		{"example1.json", "", ""},
		{"example2.json", "pai-blade-deploy:cpu_latest", ""},
		{"example3.json", "pai-blade-deploy:gpu_latest", "serving on CPU"},
	}
	for _, tc := range cases {
		ok := t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			d.t = t // waitStatus and eascmd report on this subtest
			name, svcFile := seedServiceFile(t, filepath.Join(e.repo, "testdata/seed", tc.file), modelPath)
			defer deleteAndWait(t, d, name)
			if out, err := d.eascmd("create", svcFile); err != nil {
				t.Fatalf("eascmd create %s: %v\n%s", tc.file, err, out)
			}
			svc := d.waitStatus(name, api.StatusRunning, 4*time.Minute)
			events := d.eventText(name)
			ran := strings.Contains(events, "Executing plugin eas-plugin-")
			if ran != (tc.blade != "") || !strings.Contains(events, tc.blade) {
				t.Errorf("Blade ran: %v, want a run of %q; events:\n%s", ran, tc.blade, events)
			}
			if tc.warning != "" && !hasWarning(t, d, name, tc.warning) {
				t.Errorf("no Warning event says %q:\n%s", tc.warning, events)
			}
			checkTextCNN(t, d, name, svc.AccessToken, ref)
		})
		if !ok {
			t.Logf("%s failed (see above); going on with the next example", tc.file)
		}
	}
	d.t = t
}

// hasWarning reports whether one of the service's Warning events contains text.
func hasWarning(t *testing.T, d *easd, name, text string) bool {
	t.Helper()
	evs, err := d.client.Events(context.Background(), name, 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(evs, func(e api.Event) bool { return e.Type == "Warning" && strings.Contains(e.Message, text) })
}

// seedModelDir returns the model_path the examples deploy from: the fixture files uploaded
// under a prefix on the test MinIO (whose endpoint and credentials easd then gets from its
// environment), or a local copy of them when MinIO can be neither found nor built.
func seedModelDir(t *testing.T, src string) string {
	t.Helper()
	if _, err := miniotest.Binary(t); err != nil {
		t.Logf("no MinIO (%v): deploying from a local directory", err)
		dir := filepath.Join(t.TempDir(), "model")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range seedFixtureFiles {
			copyFileE2E(t, filepath.Join(src, f), filepath.Join(dir, f))
		}
		return dir
	}
	srv := miniotest.Start(t)
	t.Setenv("EAS_OSS_ENDPOINT", srv.Endpoint())
	t.Setenv("OSS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("OSS_ACCESS_KEY_SECRET", srv.SecretKey)
	ctx := context.Background()
	c := srv.Client(t)
	const bucket, prefix = "models", "tf_security_textcnn/"
	if err := c.EnsureBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	for _, f := range seedFixtureFiles {
		if _, err := c.Upload(ctx, bucket, prefix+f, filepath.Join(src, f), nil); err != nil {
			t.Fatalf("upload %s: %v", f, err)
		}
	}
	return "oss://" + bucket + "/" + prefix
}

// seedServiceFile reads a seed service file, replaces model_path only (every other field,
// its order and its placeholder values stay as the seed wrote them) and writes the result
// into a fresh directory. It returns the service name and the written file.
func seedServiceFile(t *testing.T, file, modelPath string) (string, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var fields struct {
		Name      string `json:"name"`
		ModelPath string `json:"model_path"`
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	old, repl := jsonString(t, fields.ModelPath), jsonString(t, modelPath)
	key := []byte(`"model_path": `)
	if bytes.Count(b, append(key, old...)) != 1 {
		t.Fatalf("%s: want exactly one %s%s", file, key, old)
	}
	out := bytes.Replace(b, append(key, old...), append(key, repl...), 1)
	path := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return fields.Name, path
}

// jsonString is s as a JSON string literal, '<' and '>' as written (the seed's placeholders).
func jsonString(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// textCNNRef is the fixture's reference.json: one int32 sequence and its l2_normalize row.
type textCNNRef struct {
	shape []int64
	ids   []int32
	want  []float32
}

func loadTextCNNRef(t *testing.T, dir string) textCNNRef {
	t.Helper()
	ref := loadTFRef(t, dir)
	if len(ref.Inputs) != 1 || ref.Inputs[0].Name != "input_ids_a_1" || len(ref.Outputs) != 1 || ref.Outputs[0].Name != "l2_normalize" {
		t.Fatalf("%s: want one input input_ids_a_1 and one output l2_normalize", filepath.Join(dir, "reference.json"))
	}
	return textCNNRef{shape: ref.Inputs[0].Shape, ids: ref.Inputs[0].int32s(t), want: ref.Outputs[0].float32s(t)}
}

// checkTextCNN predicts a batch of two sequences through the EAS TF protobuf format with TF
// names: the reference sequence, whose row must match tfjs, and the same tokens reversed.
// Every row must have unit L2 norm, and the rows must differ: a normalization over the whole
// batch instead of per row would show on the second.
func checkTextCNN(t *testing.T, d *easd, name, token string, ref textCNNRef) {
	t.Helper()
	if len(ref.shape) != 2 || ref.shape[0] != 1 {
		t.Fatalf("reference input shape %v, want [1 L]", ref.shape)
	}
	rev := slices.Clone(ref.ids)
	slices.Reverse(rev)
	req := &tfpb.PredictRequest{
		Inputs: map[string]*tfpb.ArrayProto{"input_ids_a_1:0": {
			Dtype:      tfpb.ArrayDataType_DT_INT32,
			ArrayShape: &tfpb.ArrayShape{Dim: []int64{2, ref.shape[1]}},
			IntVal:     append(slices.Clone(ref.ids), rev...),
		}},
		OutputFilter: []string{"l2_normalize"},
	}
	pb, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequest("POST", d.url("/api/predict/"+name), bytes.NewReader(pb))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", token)
	code, body, err := do(hr)
	if err != nil || code != 200 {
		t.Fatalf("predict: %d %v %s", code, err, body)
	}
	var resp tfpb.PredictResponse
	if err := proto.Unmarshal(body, &resp); err != nil {
		t.Fatalf("predict response: %v", err)
	}
	o := resp.Outputs["l2_normalize"]
	if len(resp.Outputs) != 1 || o == nil {
		t.Fatalf("outputs %v, want only l2_normalize", slices.Sorted(maps.Keys(resp.Outputs)))
	}
	dim := len(ref.want)
	got := o.GetFloatVal()
	if want := []int64{2, int64(dim)}; !slices.Equal(o.GetArrayShape().GetDim(), want) || len(got) != 2*dim {
		t.Fatalf("l2_normalize: shape %v with %d values, want %v", o.GetArrayShape().GetDim(), len(got), want)
	}
	maxAbs, maxDiff := 0.0, 0.0
	for i, w := range ref.want {
		maxAbs = math.Max(maxAbs, math.Abs(float64(w)))
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-w)))
	}
	if maxDiff > 1e-4*maxAbs {
		t.Errorf("l2_normalize row 0: max difference %.3g from tfjs (max |ref| %.3g), relative %.3g > 1e-4", maxDiff, maxAbs, maxDiff/maxAbs)
	}
	for r := range 2 {
		norm := 0.0
		for _, v := range got[r*dim : (r+1)*dim] {
			norm += float64(v) * float64(v)
		}
		if norm = math.Sqrt(norm); math.Abs(norm-1) > 1e-4 {
			t.Errorf("l2_normalize row %d: L2 norm %.6f, want 1", r, norm)
		}
	}
	rowDiff := 0.0
	for i := range dim {
		rowDiff = math.Max(rowDiff, math.Abs(float64(got[i]-got[dim+i])))
	}
	if rowDiff < 1e-3 {
		t.Errorf("l2_normalize: the reversed sequence gives the same row (max difference %.3g)", rowDiff)
	}
}

// deleteAndWait deletes the service and waits until it and its workers are gone.
func deleteAndWait(t *testing.T, d *easd, name string) {
	t.Helper()
	if out, err := d.eascmd("delete", "-y", name); err != nil && !strings.Contains(out, "not found") {
		t.Errorf("eascmd delete %s: %v\n%s", name, err, out)
	}
	waitFor(t, time.Minute, "service "+name+" to be gone", func() bool {
		_, err := d.client.Describe(context.Background(), name)
		return api.IsNotFound(err)
	})
	waitFor(t, 30*time.Second, "no worker of "+name+" left", func() bool { return len(workerPIDs(t, name)) == 0 })
}
