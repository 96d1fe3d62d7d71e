package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/openeas/openeas/internal/codec"
	"github.com/openeas/openeas/internal/processor"
)

// The warm-up data of a bundle (warm_up_data_path, docs/serving.md) is one or more files,
// replayed in order. Each file is either
//   - JSON (its first non-blank byte is '{'): one request, or several as JSON lines (one
//     object per line, blank lines skipped); each is a plain JSON request ({"inputs": {…}}) or
//     an Open Inference Protocol v2 request ({"inputs": […]}), told apart by its "inputs"; or
//   - one EAS protobuf request, the bytes an EAS SDK writes with TFRequest.to_string() (the
//     real EAS's .bin warm-up file): a TensorFlow or PyTorch PredictRequest, by the
//     processor family as for /api/predict. Several protobuf requests are several files: a
//     directory or an archive as warm_up_data_path.
//
// warmRequest is one of those requests.
type warmRequest struct {
	where string // for errors: "warmup/reqs.jsonl request 3 (line 4)"
	body  []byte
	json  bool // plain JSON or v2, else protobuf
	v2    bool
}

// readWarmUp reads the warm-up files (paths inside the bundle dir) into requests. It checks the
// framing only; requests are decoded against the model's signature by replay.
func readWarmUp(dir string, files []string) ([]warmRequest, error) {
	var reqs []warmRequest
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, fmt.Errorf("warm_up_data_path: %w", err)
		}
		trimmed := bytes.TrimSpace(data)
		switch {
		case len(trimmed) == 0:
			return nil, fmt.Errorf("warm_up_data_path: warm-up file %s is empty", f)
		case trimmed[0] != '{':
			reqs = append(reqs, warmRequest{where: fmt.Sprintf("%s request %d (protobuf)", f, len(reqs)+1), body: data})
		case json.Valid(trimmed):
			r, err := jsonWarmRequest(trimmed, fmt.Sprintf("%s request %d", f, len(reqs)+1))
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, r)
		default:
			for i, line := range bytes.Split(data, []byte("\n")) {
				line = bytes.TrimSpace(line)
				if len(line) == 0 {
					continue
				}
				where := fmt.Sprintf("%s request %d (line %d)", f, len(reqs)+1, i+1)
				if !json.Valid(line) {
					return nil, fmt.Errorf("warm_up_data_path: %s: not valid JSON; a JSON warm-up file holds one request or one request per line", where)
				}
				r, err := jsonWarmRequest(line, where)
				if err != nil {
					return nil, err
				}
				reqs = append(reqs, r)
			}
		}
	}
	return reqs, nil
}

func jsonWarmRequest(b []byte, where string) (warmRequest, error) {
	var probe struct {
		Inputs json.RawMessage `json:"inputs"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return warmRequest{}, fmt.Errorf("warm_up_data_path: %s: %v", where, err)
	}
	in := bytes.TrimSpace(probe.Inputs)
	if len(in) == 0 {
		return warmRequest{}, fmt.Errorf(`warm_up_data_path: %s: no "inputs"; expected {"inputs": {name: values}} or a v2 request {"inputs": [...]}`, where)
	}
	return warmRequest{where: where, body: b, json: true, v2: in[0] == '['}, nil
}

// replay runs every warm-up request through the same decode and inference path as client
// requests (admission and batching included), without the keepalive: a first inference may
// well be slower than any later one, which is why it is warmed up.
func (s *Server) replay(ctx context.Context, md *model, reqs []warmRequest) error {
	for _, wr := range reqs {
		var req *codec.Request
		var err error
		switch {
		case wr.v2:
			req, err = codec.DecodeV2InferSigned(http.Header{"Content-Type": {codec.ContentTypeJSON}}, wr.body, md.sig, md.tfSigs)
		case wr.json:
			req, err = codec.DecodeSigned(md.family, http.Header{"Content-Type": {codec.ContentTypeJSON}}, wr.body, md.sig, md.tfSigs)
		default:
			req, err = codec.DecodeSigned(md.family, nil, wr.body, md.sig, md.tfSigs)
		}
		if err != nil {
			return fmt.Errorf("warm_up_data_path: %s cannot be decoded: %w", wr.where, err)
		}
		if _, _, err := s.infer(ctx, md, req.Inputs, req.Outputs); err != nil {
			if processor.IsInputError(err) {
				return fmt.Errorf("warm_up_data_path: %s was rejected by the model: %w", wr.where, err)
			}
			return fmt.Errorf("warm_up_data_path: %s failed: %w", wr.where, err)
		}
	}
	return nil
}
